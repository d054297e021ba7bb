//! The workbook of an `xlsx` export (formats.md, "xlsx"): the typed cells the formatting
//! threads made, written in order into constant-memory worksheets (each row goes to a
//! temporary file as it comes; nothing accumulates), split onto `Name (2)`, … at the row
//! limit, then zipped into the output.
//!
//! rust_xlsxwriter rather than hand-written XML: it writes valid Office Open XML (styles,
//! shared parts, the zip container) that Excel, LibreOffice and readers accept, and its
//! constant-memory mode streams rows to disk.

use std::io::{self, Write};
use std::path::Path;

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::csv::cells::{self, Cell};

/// Excel's row limit, header included.
pub const EXCEL_MAX_ROWS: u32 = 1_048_576;
/// Excel's limit on a sheet name's length.
const SHEET_NAME_MAX: usize = 31;

/// A workbook being written: implements [`Write`] for the cell bytes of
/// [`cells`](super::csv::cells), in order.
pub struct XlsxSink {
    workbook: Workbook,
    header: Vec<String>,
    base_name: String,
    /// Rows per sheet, header included.
    sheet_rows: u32,
    sheets: usize,
    /// The next row of the current sheet.
    row: u32,
    col: u16,
    /// Bytes of a cell cut between two writes.
    pending: Vec<u8>,
    bold: Format,
    datetime: Format,
    date: Format,
}

fn xlsx_error(e: XlsxError) -> io::Error {
    match e {
        XlsxError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl XlsxSink {
    /// A workbook whose worksheets keep their rows in temporary files in `temp_dir`.
    /// `sheet_rows` is the row limit of one sheet ([`EXCEL_MAX_ROWS`]; tests use less).
    pub fn new(schema_name: &str, header: Vec<String>, temp_dir: &Path, sheet_rows: u32) -> io::Result<XlsxSink> {
        let mut workbook = Workbook::new();
        workbook.set_tempdir(temp_dir).map_err(xlsx_error)?;
        let mut sink = XlsxSink {
            workbook,
            header,
            base_name: sheet_name(schema_name),
            sheet_rows: sheet_rows.max(2),
            sheets: 0,
            row: 0,
            col: 0,
            pending: Vec::new(),
            bold: Format::new().set_bold(),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss.000"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
        };
        sink.new_sheet()?;
        Ok(sink)
    }

    fn sheet(&mut self) -> io::Result<&mut Worksheet> {
        self.workbook.worksheet_from_index(self.sheets - 1).map_err(xlsx_error)
    }

    /// Closes the current sheet (its autofilter spans its rows) and starts the next one
    /// with the header row.
    fn new_sheet(&mut self) -> io::Result<()> {
        self.close_sheet()?;
        let name = match self.sheets {
            0 => self.base_name.clone(),
            n => numbered(&self.base_name, n + 1),
        };
        let (header, bold) = (std::mem::take(&mut self.header), self.bold.clone());
        let sheet = self.workbook.add_worksheet_with_constant_memory().map_err(xlsx_error)?;
        sheet.set_name(&name).map_err(xlsx_error)?;
        for (c, h) in header.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, h, &bold).map_err(xlsx_error)?;
        }
        sheet.set_freeze_panes(1, 0).map_err(xlsx_error)?;
        self.header = header;
        self.sheets += 1;
        self.row = 1;
        self.col = 0;
        Ok(())
    }

    fn close_sheet(&mut self) -> io::Result<()> {
        if self.sheets == 0 || self.header.is_empty() {
            return Ok(());
        }
        let (last_row, last_col) = (self.row.saturating_sub(1), (self.header.len() - 1) as u16);
        self.sheet()?.autofilter(0, 0, last_row, last_col).map_err(xlsx_error)?;
        Ok(())
    }

    fn put(&mut self, cell: Cell) -> io::Result<()> {
        if cell == Cell::RowEnd {
            self.row += 1;
            self.col = 0;
            return Ok(());
        }
        if self.col == 0 && self.row >= self.sheet_rows {
            self.new_sheet()?;
        }
        let (row, col) = (self.row, self.col);
        self.col += 1;
        let XlsxSink { workbook, sheets, datetime, date, .. } = self;
        let sheet = workbook.worksheet_from_index(*sheets - 1).map_err(xlsx_error)?;
        let written = match cell {
            Cell::Empty | Cell::RowEnd => return Ok(()),
            Cell::Text(t) => sheet.write_string(row, col, fit_cell(t)),
            Cell::Number(n) => sheet.write_number(row, col, n),
            Cell::Bool(b) => sheet.write_boolean(row, col, b),
            Cell::DateTime(n) => sheet.write_number_with_format(row, col, n, datetime),
            Cell::Date(n) => sheet.write_number_with_format(row, col, n, date),
        };
        written.map(|_| ()).map_err(xlsx_error)
    }

    /// Writes the workbook to `out` (through a temporary file in `temp_dir`: the zip is
    /// made once every sheet is whole).
    pub fn finish(mut self, temp_dir: &Path, out: &mut impl Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            return Err(io::Error::other("the workbook's last cell was cut short"));
        }
        self.close_sheet()?;
        let mut file = tempfile::tempfile_in(temp_dir)?;
        self.workbook.save_to_writer(&mut file).map_err(xlsx_error)?;
        io::Seek::rewind(&mut file)?;
        io::copy(&mut file, out)?;
        Ok(())
    }
}

impl Write for XlsxSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pending = std::mem::take(&mut self.pending);
        let bytes: &[u8] = if pending.is_empty() {
            buf
        } else {
            pending.extend_from_slice(buf);
            &pending
        };
        let mut at = 0;
        while let Some((cell, n)) = cells::take(&bytes[at..]) {
            self.put(cell)?;
            at += n;
        }
        let rest = bytes[at..].to_vec();
        pending.clear();
        self.pending = if rest.is_empty() { pending } else { rest };
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Excel's limit on the characters of one cell.
const CELL_CHARS_MAX: usize = 32_767;

/// `text` cut to Excel's 32,767 characters a cell can hold (a longer text would make the
/// workbook unreadable, and failing the whole export for one cell helps nobody).
fn fit_cell(text: &str) -> &str {
    if text.len() <= CELL_CHARS_MAX {
        return text;
    }
    match text.char_indices().nth(CELL_CHARS_MAX) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The schema's name as a sheet name: `[ ] : * ? / \` replaced by `_`, no leading or
/// trailing `'`, at most 31 characters, never empty.
pub fn sheet_name(schema_name: &str) -> String {
    let name: String = schema_name
        .chars()
        .map(|c| if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') || c.is_control() { '_' } else { c })
        .take(SHEET_NAME_MAX)
        .collect();
    let name = name.trim_matches('\'').trim();
    // "History" is reserved by Excel
    match name {
        "" => "Export".to_string(),
        n if n.eq_ignore_ascii_case("history") => format!("{n}_"),
        n => n.to_string(),
    }
}

/// `Name (n)`, the name cut so that the whole stays within 31 characters.
fn numbered(base: &str, n: usize) -> String {
    let suffix = format!(" ({n})");
    let keep = SHEET_NAME_MAX - suffix.chars().count();
    let base: String = base.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches('\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_fit_excel() {
        assert_eq!(sheet_name("Invoices"), "Invoices");
        assert_eq!(sheet_name("Q1/2024: [draft]?*"), "Q1_2024_ _draft___");
        assert_eq!(sheet_name("'quoted'"), "quoted");
        assert_eq!(sheet_name(""), "Export");
        assert_eq!(sheet_name("History"), "History_");
        let long = "A schema name that is far too long for Excel";
        assert_eq!(sheet_name(long).chars().count(), 31);
        assert_eq!(numbered(&sheet_name(long), 2), "A schema name that is far t (2)");
        assert_eq!(numbered("Invoices", 12), "Invoices (12)");
    }

    #[test]
    fn cells_hold_at_most_excels_characters() {
        let long = "é".repeat(40_000);
        assert_eq!(fit_cell(&long).chars().count(), CELL_CHARS_MAX);
        assert_eq!(fit_cell("short"), "short");
        let exact = "x".repeat(CELL_CHARS_MAX);
        assert_eq!(fit_cell(&exact), exact);
    }
}
