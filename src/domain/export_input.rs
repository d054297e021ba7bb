//! A new export as a person wrote it, through the API (`POST /v1/exports`) or the command line
//! (`exports-api export`): the same checks in the same order, and the same messages, with
//! each field called by the name its caller knows it by (`start_date` or `--start`).

use std::fmt;

use super::export::{BadDelimiter, CsvOptions, Delimiter, ExportFormat, HeaderStyle, NewExport};
use super::time::{format_ms, parse_instant, DayEnd};

/// A new export's input before it is checked; `None` options take their defaults.
#[derive(Debug, Clone, Default)]
pub struct ExportInput<'a> {
    pub schema_id: String,
    pub start_date: &'a str,
    pub end_date: &'a str,
    pub expand_array: Option<String>,
    pub delimiter: Option<&'a str>,
    pub bom: Option<bool>,
    pub header: Option<HeaderStyle>,
    pub formula_guard: Option<bool>,
    pub gzip: Option<bool>,
    /// `None`: CSV.
    pub format: Option<ExportFormat>,
    /// The chosen columns (checked against the schema once it is looked up).
    pub columns: Option<Vec<String>>,
    pub timezone: Option<&'a str>,
}

/// The input fields a refusal can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportField {
    StartDate,
    EndDate,
    Delimiter,
    Bom,
    FormulaGuard,
    Gzip,
    Format,
    Columns,
    Timezone,
}

impl ExportField {
    /// The field's name in `POST /v1/exports`.
    pub fn api_name(self) -> &'static str {
        match self {
            ExportField::StartDate => "start_date",
            ExportField::EndDate => "end_date",
            ExportField::Delimiter => "options.delimiter",
            ExportField::Bom => "options.bom",
            ExportField::FormulaGuard => "options.formula_guard",
            ExportField::Gzip => "options.gzip",
            ExportField::Format => "format",
            ExportField::Columns => "columns",
            ExportField::Timezone => "options.timezone",
        }
    }
}

/// Why an export's input was refused (the first fault, in the order the fields are checked:
/// the dates, their order, the options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadExportInput {
    /// A date that does not parse; the reason shows what to write.
    Date(ExportField, String),
    /// The range ends before it starts.
    Reversed {
        start_ms: i64,
        end_ms: i64,
    },
    Delimiter(BadDelimiter),
    /// An option given that the format does not use.
    NotForFormat(ExportField, ExportFormat),
    /// `columns` given as an empty list.
    NoColumns,
    /// A time zone name that is not in the IANA database.
    Timezone(String),
}

impl BadExportInput {
    /// The message, with each field called `name(field)`.
    pub fn message(&self, name: impl Fn(ExportField) -> &'static str) -> String {
        match self {
            BadExportInput::Date(field, why) => format!("{}: {why}", name(*field)),
            BadExportInput::Reversed { start_ms, end_ms } => format!(
                "{} ({}) is after {} ({})",
                name(ExportField::StartDate),
                format_ms(*start_ms),
                name(ExportField::EndDate),
                format_ms(*end_ms)
            ),
            BadExportInput::Delimiter(bad) => format!("{} {bad}", name(ExportField::Delimiter)),
            BadExportInput::NotForFormat(field, format) => format!(
                "{} does not apply to {} {}; leave it out",
                name(*field),
                name(ExportField::Format),
                format.as_str()
            ),
            BadExportInput::NoColumns => {
                format!("{} is empty; name at least one column, or leave it out for all of them", name(ExportField::Columns))
            }
            BadExportInput::Timezone(zone) => format!(
                "{} {zone:?} is not an IANA time zone name; use one such as \"Europe/Paris\", \"America/New_York\" or \"UTC\"",
                name(ExportField::Timezone)
            ),
        }
    }
}

/// The message with the API's field names.
impl fmt::Display for BadExportInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(ExportField::api_name))
    }
}

impl ExportInput<'_> {
    /// Checks everything that needs no database: the dates (a bare date is the start of its
    /// day for `start_date`, the whole day for `end_date`), their order, the options.
    /// `expand_array` is checked against the schema once it is looked up.
    pub fn check(self) -> Result<NewExport, BadExportInput> {
        let start_ms = parse_instant(self.start_date, DayEnd::Start)
            .map_err(|why| BadExportInput::Date(ExportField::StartDate, why))?;
        let end_ms =
            parse_instant(self.end_date, DayEnd::End).map_err(|why| BadExportInput::Date(ExportField::EndDate, why))?;
        if start_ms > end_ms {
            return Err(BadExportInput::Reversed { start_ms, end_ms });
        }
        let format = self.format.unwrap_or_default();
        let not_for_format: &[(ExportField, bool)] = match format {
            ExportFormat::Csv => &[],
            ExportFormat::Jsonl => &[
                (ExportField::Delimiter, self.delimiter.is_some()),
                (ExportField::Bom, self.bom.is_some()),
                (ExportField::FormulaGuard, self.formula_guard.is_some()),
            ],
            ExportFormat::Xlsx => &[
                (ExportField::Delimiter, self.delimiter.is_some()),
                (ExportField::Bom, self.bom.is_some()),
                (ExportField::Gzip, self.gzip.is_some()),
            ],
        };
        if let Some((field, _)) = not_for_format.iter().find(|(_, given)| *given) {
            return Err(BadExportInput::NotForFormat(*field, format));
        }
        if self.columns.as_ref().is_some_and(Vec::is_empty) {
            return Err(BadExportInput::NoColumns);
        }
        if let Some(zone) = self.timezone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(BadExportInput::Timezone(zone.to_string()));
            }
        }
        let d = CsvOptions::default();
        let delimiter = match self.delimiter {
            None => d.delimiter,
            Some(s) => s.parse::<Delimiter>().map_err(BadExportInput::Delimiter)?.as_char(),
        };
        let options = CsvOptions {
            delimiter,
            bom: self.bom.unwrap_or(d.bom),
            header: self.header.unwrap_or(d.header),
            formula_guard: self.formula_guard.unwrap_or(d.formula_guard),
            gzip: self.gzip.unwrap_or(d.gzip),
            format,
            columns: self.columns,
            timezone: self.timezone.map(str::to_string),
        };
        Ok(NewExport { schema_id: self.schema_id, start_ms, end_ms, expand_array: self.expand_array, options })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(start: &'a str, end: &'a str) -> ExportInput<'a> {
        ExportInput { schema_id: "s".into(), start_date: start, end_date: end, ..ExportInput::default() }
    }

    fn cli_name(f: ExportField) -> &'static str {
        match f {
            ExportField::StartDate => "--start",
            ExportField::EndDate => "--end",
            ExportField::Delimiter => "--delimiter",
            ExportField::Bom => "--bom",
            ExportField::FormulaGuard => "--formula-guard",
            ExportField::Gzip => "--gzip",
            ExportField::Format => "--format",
            ExportField::Columns => "--columns",
            ExportField::Timezone => "--timezone",
        }
    }

    #[test]
    fn bare_dates_cover_whole_days_and_options_default() {
        let new = input("2024-01-01", "2024-01-01").check().unwrap();
        assert_eq!(new.end_ms - new.start_ms, 86_399_999);
        assert_eq!(new.options, CsvOptions::default());
        let new = ExportInput {
            delimiter: Some(";"),
            bom: Some(true),
            header: Some(HeaderStyle::Label),
            ..input("2024-01-01", "2024-01-02")
        };
        let o = new.check().unwrap().options;
        assert_eq!(
            (o.delimiter, o.bom, o.header, o.formula_guard, o.gzip),
            (';', true, HeaderStyle::Label, true, false)
        );
    }

    #[test]
    fn the_first_fault_is_named_as_each_caller_names_it() {
        let e = input("soon", "later").check().unwrap_err();
        assert!(e.to_string().starts_with("start_date: 'soon' is not an ISO 8601"), "{e}");
        assert!(e.message(cli_name).starts_with("--start: 'soon' is not an ISO 8601"), "{e}");
        let e = input("2024-02-01", "2024-01-01").check().unwrap_err();
        assert_eq!(e.to_string(), "start_date (2024-02-01T00:00:00.000Z) is after end_date (2024-01-01T23:59:59.999Z)");
        assert_eq!(e.message(cli_name), "--start (2024-02-01T00:00:00.000Z) is after --end (2024-01-01T23:59:59.999Z)");
        let e = ExportInput { delimiter: Some("x"), ..input("2024-02-01", "later") }.check().unwrap_err();
        assert!(e.to_string().starts_with("end_date: "), "the dates come before the options: {e}");
        let e = ExportInput { delimiter: Some("x"), ..input("2024-01-01", "2024-01-02") }.check().unwrap_err();
        assert_eq!(e.message(cli_name), r#"--delimiter "x" is not allowed; use one of ",", ";", "\t", "|""#);
    }

    #[test]
    fn formats_refuse_the_options_they_do_not_use_and_zones_are_iana_names() {
        let at = |format, f: fn(ExportInput) -> ExportInput| {
            f(ExportInput { format: Some(format), ..input("2024-01-01", "2024-01-02") }).check()
        };
        let e = at(ExportFormat::Jsonl, |i| ExportInput { bom: Some(false), ..i }).unwrap_err();
        assert_eq!(e.to_string(), "options.bom does not apply to format jsonl; leave it out");
        assert_eq!(e.message(cli_name), "--bom does not apply to --format jsonl; leave it out");
        let e = at(ExportFormat::Xlsx, |i| ExportInput { gzip: Some(true), ..i }).unwrap_err();
        assert_eq!(e.to_string(), "options.gzip does not apply to format xlsx; leave it out");
        let e = at(ExportFormat::Xlsx, |i| ExportInput { delimiter: Some(";"), ..i }).unwrap_err();
        assert_eq!(e.to_string(), "options.delimiter does not apply to format xlsx; leave it out");
        assert!(at(ExportFormat::Jsonl, |i| ExportInput { gzip: Some(true), ..i }).is_ok());
        assert!(at(ExportFormat::Xlsx, |i| ExportInput { formula_guard: Some(true), ..i }).is_ok());
        assert!(at(ExportFormat::Csv, |i| ExportInput { bom: Some(true), gzip: Some(true), ..i }).is_ok());
        let e = at(ExportFormat::Csv, |i| ExportInput { timezone: Some("Mars/Olympus"), ..i }).unwrap_err();
        assert!(e.to_string().starts_with(r#"options.timezone "Mars/Olympus" is not an IANA time zone name"#), "{e}");
        let ok = at(ExportFormat::Jsonl, |i| ExportInput { timezone: Some("Asia/Kolkata"), ..i }).unwrap();
        assert_eq!(ok.options.timezone.as_deref(), Some("Asia/Kolkata"));
        assert_eq!(ok.options.format, ExportFormat::Jsonl);
        let e = at(ExportFormat::Csv, |i| ExportInput { columns: Some(vec![]), ..i }).unwrap_err();
        assert!(e.to_string().starts_with("columns is empty"), "{e}");
    }
}
