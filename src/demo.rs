//! Demo data for `serve --demo`: a team, an invoice schema with a nested object and two
//! arrays, and a few thousand awkward results (quotes, newlines, non-ASCII, formula
//! look-alikes, nulls, empty arrays) dated January–March 2024, like
//! `shared/bench/gen_results.py` makes.

use crate::db::Sql;

use crate::db::{self, keys, DbResult};
use crate::domain::result::NewResult;
use crate::domain::rng::Rng;
use crate::domain::schema::SchemaDef;

/// The demo team's id and the demo schema's id: the ids of the original API's examples,
/// so its curl calls work as written.
pub const DEMO_TEAM_ID: &str = "019760a0-0000-7000-8000-000000000000";
pub const DEMO_SCHEMA_ID: &str = "019760a0-0001-7000-8000-000000000001";
pub const DEMO_RESULTS: usize = 3000;

const VENDORS: &[&str] = &[
    "Acme Corp",
    "Globex, Inc.",
    "The \"Best\" Widgets",
    "Müller & Söhne GmbH",
    "東京商事株式会社",
    "Initech",
    "Umbrella Ltd.",
    "Soylent\nFoods",
    "=HYPERLINK(\"http://x\")",
    "O'Reilly Media",
    "+1 Supplies",
    "@home Services",
    "-minus Labs",
];
const CITIES: &[(&str, &str)] = &[
    ("Berlin", "DE"),
    ("São Paulo", "BR"),
    ("New York, NY", "US"),
    ("Zürich", "CH"),
    ("Kraków", "PL"),
    ("Tokyo", "JP"),
    ("Lagos", "NG"),
    ("Paris", "FR"),
];
const ITEMS: &[&str] = &[
    "Consulting hours",
    "Widget, large",
    "Cable 3\" shielded",
    "Licence – annual",
    "Shipping",
    "Ünïcödé part",
    "Support\nplan",
    "=SUM(A1:A9)",
    "Discount",
    "Setup fee",
];
const NOTES: &[&str] =
    &["", "Net 30", "Paid by \"wire\"", "Line one\nLine two", "  padded  ", "comma, separated", "-5% early payment"];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "JPY", "CHF"];
const TAGS: &[&str] = &["urgent", "q1", "disputed", "recurring", "eu"];

pub fn schema() -> SchemaDef {
    serde_json::from_value(serde_json::json!({"fields": [
        {"key": "invoice_number", "label": "Invoice number", "type": "string"},
        {"key": "vendor_name", "label": "Vendor", "type": "string"},
        {"key": "invoice_date", "label": "Invoice date", "type": "date"},
        {"key": "currency", "label": "Currency", "type": "string"},
        {"key": "total", "label": "Total", "type": "number"},
        {"key": "paid", "label": "Paid", "type": "boolean"},
        {"key": "page_count", "label": "Pages", "type": "integer"},
        {"key": "notes", "label": "Notes", "type": "string"},
        {"key": "billing_address", "label": "Billing address", "type": "object", "fields": [
            {"key": "street", "label": "Street", "type": "string"},
            {"key": "city", "label": "City", "type": "string"},
            {"key": "country", "label": "Country", "type": "string"}
        ]},
        {"key": "line_items", "label": "Line items", "type": "array", "fields": [
            {"key": "description", "label": "Description", "type": "string"},
            {"key": "quantity", "label": "Quantity", "type": "number"},
            {"key": "unit_price", "label": "Unit price", "type": "number"},
            {"key": "amount", "label": "Amount", "type": "number"}
        ]},
        {"key": "tags", "label": "Tags", "type": "array"}
    ]}))
    .expect("the demo schema is valid")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The demo results: January–March 2024, createdAt rising.
pub fn results(count: usize) -> Vec<NewResult> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = 1_704_067_200_000i64; // 2024-01-01T00:00:00Z
    let span = 90 * 86_400_000i64;
    (0..count)
        .map(|i| {
            let created = start + (i as i64 * span) / count.max(1) as i64;
            let n_items = [0, 1, 2, 3, 3, 4, 5, 8][rng.below(8)];
            let items: Vec<serde_json::Value> = (0..n_items)
                .map(|_| {
                    let q = 1 + rng.below(40) as i64;
                    let p = round2(0.5 + (rng.next_u64() % 89_950) as f64 / 100.0);
                    serde_json::json!({"description": rng.pick(ITEMS), "quantity": q, "unit_price": p,
                                       "amount": round2(q as f64 * p)})
                })
                .collect();
            let subtotal: f64 = round2(items.iter().fold(0.0, |acc, x| acc + x["amount"].as_f64().unwrap_or(0.0)));
            let (city, country) = CITIES[rng.below(CITIES.len())];
            let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(0.25)).collect();
            let date = crate::domain::time::format_date(created - rng.below(20) as i64 * 86_400_000);
            let mut e = serde_json::json!({
                "invoice_number": format!("INV-{i:08}"),
                "vendor_name": rng.pick(VENDORS),
                "invoice_date": date,
                "currency": rng.pick(CURRENCIES),
                "total": round2(subtotal * 1.19),
                "paid": rng.chance(0.6),
                "page_count": 1 + rng.below(12),
                "notes": rng.pick(NOTES),
                "billing_address": {"street": format!("{} Main St", 1 + rng.below(999)), "city": city, "country": country},
                "line_items": items,
                "tags": tags,
            });
            if rng.chance(0.05) {
                e.as_object_mut().expect("object").shift_remove("notes");
            }
            if rng.chance(0.02) {
                e["billing_address"] = serde_json::Value::Null;
            }
            NewResult { file_name: Some(format!("invoice-{i:08}.pdf")), created_at: created, extraction: e.to_string() }
        })
        .collect()
}

/// On an empty database: creates team `demo`, its key (printed), the schema and the results,
/// in the caller's transaction (the writer's).
pub fn load_if_empty(conn: &dyn Sql) -> DbResult<Option<String>> {
    let empty = conn.one("SELECT NOT EXISTS (SELECT 1 FROM teams)", &[], |r| r.int(0))? != 0;
    if !empty {
        return Ok(None);
    }
    let tx = conn;
    keys::create_team_with_id(tx, DEMO_TEAM_ID, "demo")?;
    let secret = keys::generate_key();
    keys::add_key(tx, DEMO_TEAM_ID, Some("demo"), &secret)?;
    let now = crate::domain::time::now_ms();
    db::schemas::insert(
        tx,
        &db::schemas::SchemaRow {
            id: DEMO_SCHEMA_ID.into(),
            team_id: DEMO_TEAM_ID.into(),
            name: "Invoices".into(),
            description: Some("Supplier invoices with line items (demo data)".into()),
            definition: schema(),
            created_at: now,
            updated_at: now,
        },
    )?;
    db::results::insert_in(tx, DEMO_TEAM_ID, DEMO_SCHEMA_ID, results(DEMO_RESULTS))?;
    println!(
        "Loaded demo data: team 'demo' ({DEMO_TEAM_ID}), schema 'Invoices' ({DEMO_SCHEMA_ID}), {DEMO_RESULTS} results from 2024-01-01 to 2024-03-30.\n\
         Demo API key (shown once, keep it):\n\n    export KEY={secret}\n"
    );
    Ok(Some(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_results_are_objects_in_order() {
        let r = results(100);
        assert_eq!(r.len(), 100);
        assert!(r.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        for x in &r {
            let v: serde_json::Value = serde_json::from_str(&x.extraction).unwrap();
            assert!(v.is_object());
        }
        assert!(schema().validate().is_ok());
    }
}
