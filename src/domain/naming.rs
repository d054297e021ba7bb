//! The file name a download gets: readable in a file manager, safe in a URL path.

use super::time::format_date;

/// `invoices_2024-01-01_2024-01-31` for schema "Invoices" and January 2024.
pub fn export_base_name(schema_name: &str, start_ms: i64, end_ms: i64) -> String {
    let mut slug = String::new();
    for c in schema_name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '-' {
            slug.push(c);
        } else if !slug.ends_with('_') && !slug.is_empty() {
            slug.push('_');
        }
    }
    let slug = slug.trim_matches(|c| c == '_' || c == '-');
    let slug: String = slug.chars().take(60).collect();
    let slug = if slug.is_empty() { "export".to_string() } else { slug };
    format!("{slug}_{}_{}", format_date(start_ms), format_date(end_ms))
}

/// The file extension of an export file.
pub fn extension(gzip: bool) -> &'static str {
    if gzip {
        "csv.gz"
    } else {
        "csv"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_names() {
        let jan1 = 1_704_067_200_000;
        let jan31 = jan1 + 30 * 86_400_000 + 86_399_999;
        assert_eq!(export_base_name("Invoices", jan1, jan31), "invoices_2024-01-01_2024-01-31");
        assert_eq!(
            export_base_name("Müller & Söhne: Q1/2024", jan1, jan1),
            "m_ller_s_hne_q1_2024_2024-01-01_2024-01-01"
        );
        assert_eq!(export_base_name("../..", jan1, jan1), "export_2024-01-01_2024-01-01");
    }
}
