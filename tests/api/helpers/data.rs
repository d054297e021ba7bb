//! Test data. `invoices` makes, in Rust, data of the shape `../shared/bench/gen_results.py`
//! makes (same schema, the same kinds of awkward values); `gen_results` runs that Python
//! generator, for the tests whose point is its exact data (see where it is called).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

const VENDORS: [&str; 15] = [
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
    "Stark Industries",
    "Wayne Enterprises",
    "+1 Supplies",
    "@home Services",
    "-minus Labs",
];
const CITIES: [(&str, &str); 8] = [
    ("Berlin", "DE"),
    ("São Paulo", "BR"),
    ("New York, NY", "US"),
    ("Zürich", "CH"),
    ("Kraków", "PL"),
    ("Tokyo", "JP"),
    ("Lagos", "NG"),
    ("Paris", "FR"),
];
const ITEMS: [&str; 10] = [
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
const CURRENCIES: [&str; 5] = ["EUR", "USD", "GBP", "JPY", "CHF"];
const NOTES: [&str; 7] =
    ["", "Net 30", "Paid by \"wire\"", "Line one\nLine two", "  padded  ", "comma, separated", "-5% early payment"];
const TAGS: [&str; 5] = ["urgent", "q1", "disputed", "recurring", "eu"];

/// The invoice schema of `gen_results.py` (name "Invoices"; a nested object, a `line_items`
/// array of objects and a `tags` array of strings).
pub fn invoice_schema() -> Value {
    json!({"name": "Invoices", "description": "Supplier invoices with line items", "schema": {"fields": [
        {"key": "invoice_number", "label": "Invoice number", "type": "string"},
        {"key": "vendor_name", "label": "Vendor", "type": "string"},
        {"key": "vendor_tax_id", "label": "Vendor tax ID", "type": "string"},
        {"key": "invoice_date", "label": "Invoice date", "type": "date"},
        {"key": "due_date", "label": "Due date", "type": "date"},
        {"key": "currency", "label": "Currency", "type": "string"},
        {"key": "subtotal", "label": "Subtotal", "type": "number"},
        {"key": "tax", "label": "Tax", "type": "number"},
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
    ]}})
}

/// splitmix64: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// In `lo..=hi`.
    fn int(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.next() as usize % of.len()]
    }
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// `cents / 100` as the shortest decimal, e.g. `12.3`, `5.0` or `1234.56`.
fn money(cents: u64) -> String {
    match (cents % 100, cents % 10) {
        (0, _) => format!("{}.0", cents / 100),
        (c, 0) => format!("{}.{}", cents / 100, c / 10),
        (c, _) => format!("{}.{c:02}", cents / 100),
    }
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// `count` invoice results for `invoice_schema()` as NDJSON, deterministic for a `seed`;
/// `createdAt` rises evenly over the 90 days from 2024-01-01, as in `gen_results.py`.
/// Written as text (not through `serde_json::Value`), so that 30,000 take well under a
/// second in a debug build.
pub fn invoices(count: usize, seed: u64) -> (Value, String) {
    use std::fmt::Write;
    let mut rng = Rng(seed);
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    let span_ms: i64 = 90 * 86_400 * 1000;
    let mut out = String::with_capacity(count * 800);
    for i in 0..count {
        let created = start + chrono::Duration::milliseconds(i as i64 * span_ms / count.max(1) as i64);
        let n_items = [0, 1, 2, 3, 3, 4, 5, 8][rng.int(0, 7) as usize];
        let mut items = String::new();
        let mut subtotal = 0;
        for k in 0..n_items {
            let q = rng.int(1, 40);
            let p = rng.int(50, 90_000);
            subtotal += q * p;
            let sep = if k == 0 { "" } else { "," };
            let d = js(rng.pick(&ITEMS));
            let _ = write!(
                items,
                "{sep}{{\"description\":{d},\"quantity\":{q},\"unit_price\":{},\"amount\":{}}}",
                money(p),
                money(q * p)
            );
        }
        let tax = subtotal * 19 / 100;
        let invoice_date = created.date() - chrono::Duration::days(rng.int(0, 20) as i64);
        let (city, country) = CITIES[rng.int(0, 7) as usize];
        let mut tags: Vec<String> = Vec::new();
        for _ in 0..rng.int(0, 3) {
            let t = js(rng.pick(&TAGS));
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        let vendor = js(rng.pick(&VENDORS));
        let tax_id =
            if rng.chance(10) { "null".to_string() } else { format!("\"DE{}\"", rng.int(100_000_000, 999_999_999)) };
        let currency = js(rng.pick(&CURRENCIES));
        let paid = rng.chance(60);
        let pages = rng.int(1, 12);
        let notes = js(rng.pick(&NOTES));
        // a key the extractor did not find
        let notes = if rng.chance(5) { String::new() } else { format!("\"notes\":{notes},") };
        let street = rng.int(1, 999);
        let address = if rng.chance(2) {
            "null".to_string()
        } else {
            format!("{{\"street\":\"{street} Main St\",\"city\":{},\"country\":\"{country}\"}}", js(city))
        };
        let _ = writeln!(
            out,
            "{{\"file_name\":\"invoice-{i:08}.pdf\",\"createdAt\":\"{}\",\"extraction\":{{\
             \"invoice_number\":\"INV-{i:08}\",\"vendor_name\":{vendor},\"vendor_tax_id\":{tax_id},\
             \"invoice_date\":\"{invoice_date}\",\"due_date\":\"{}\",\"currency\":{currency},\
             \"subtotal\":{},\"tax\":{},\"total\":{},\"paid\":{paid},\"page_count\":{pages},{notes}\
             \"billing_address\":{address},\"line_items\":[{items}],\"tags\":[{}]}}}}",
            created.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            invoice_date + chrono::Duration::days(30),
            money(subtotal),
            money(tax),
            money(subtotal + tax),
            tags.join(","),
        );
    }
    (invoice_schema(), out)
}

/// Generates the awkward benchmark data set with `../shared/bench/gen_results.py`; returns
/// (schema JSON, NDJSON text). Only for tests whose point is that exact data (Python's
/// float formatting and JSON text); the others use `invoices`.
pub fn gen_results(count: usize, seed: u64) -> (Value, String) {
    let out = tempfile::tempdir().unwrap();
    // the project's shared folder lies beside the repository (also in CI)
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_results.py");
    assert!(
        script.exists(),
        "{} is missing: the tests expect the project's shared/ folder beside the repository",
        script.display()
    );
    let st = Command::new("python3")
        .arg(&script)
        .args(["--count", &count.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(out.path())
        .status()
        .expect("python3 runs gen_results.py");
    assert!(st.success());
    let schema = serde_json::from_str(&std::fs::read_to_string(out.path().join("schema.json")).unwrap()).unwrap();
    let nd = std::fs::read_to_string(out.path().join("results.ndjson")).unwrap();
    (schema, nd)
}
