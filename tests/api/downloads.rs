//! Signed download URLs (api.md, "Download URLs"): shape, signature recipe, headers, ranges,
//! conditional requests, and every way a URL can be tampered with.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::helpers;
use crate::helpers::{is_uuid, TestApp};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const NAME: &str = "invoices_2024-01-01_2024-03-31";

/// A download URL taken apart.
#[derive(Debug, Clone)]
struct Signed {
    team: String,
    export: String,
    file: String,
    expires: i64,
    token: String,
}

impl Signed {
    fn path(&self) -> String {
        format!("/files/teams/{}/{}/{}", self.team, self.export, self.file)
    }

    fn url(&self, base: &str) -> String {
        format!("{base}{}?expires={}&token={}", self.path(), self.expires, self.token)
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// base64url (no padding) of HMAC-SHA256(key, "GET\n" + path + "\n" + expires).
fn sign(path: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(helpers::SIGNING_KEY).unwrap();
    mac.update(format!("GET\n{path}\n{expires}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn parse_url(base: &str, url: &str) -> Signed {
    let rest = url.strip_prefix(base).unwrap_or_else(|| panic!("URL {url} does not start with {base}"));
    let (path, query) = rest.split_once('?').unwrap_or_else(|| panic!("URL {url} has no query"));
    let segs: Vec<&str> = path.split('/').collect();
    assert_eq!(segs.len(), 6, "path {path} is not /files/teams/{{team}}/{{export}}/{{name}}.csv");
    assert_eq!(&segs[..3], ["", "files", "teams"], "path {path}");
    let mut expires = None;
    let mut token = None;
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("expires", v)) => expires = Some(v.parse::<i64>().expect("expires is a unix time")),
            Some(("token", v)) => token = Some(v.to_string()),
            _ => panic!("unexpected query part {kv:?} in {url}"),
        }
    }
    Signed {
        team: segs[3].to_string(),
        export: segs[4].to_string(),
        file: segs[5].to_string(),
        expires: expires.expect("expires in query"),
        token: token.expect("token in query"),
    }
}

struct Setup {
    app: TestApp,
    schema_id: String,
    export_id: String,
    url: String,
    signed: Signed,
    body: Vec<u8>,
}

async fn export(app: &TestApp, schema_id: &str) -> Value {
    let e = app
        .export_and_wait(&json!({"schema_id": schema_id, "start_date": "2024-01-01", "end_date": "2024-03-31"}))
        .await;
    assert_eq!(e["status"], "COMPLETED", "{e}");
    e
}

async fn setup() -> Setup {
    let app = helpers::spawn_app().await;
    let (schema, nd) = helpers::invoices(60, 5);
    let s = app.create_schema(&schema).await;
    let schema_id = s["id"].as_str().unwrap().to_string();
    app.upload_ndjson(&schema_id, nd).await;
    let e = export(&app, &schema_id).await;
    let export_id = e["id"].as_str().unwrap().to_string();
    let url = app.download_url(&export_id).await;
    let signed = parse_url(&app.base_url, &url);
    let r = app.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    let body = r.bytes().await.unwrap().to_vec();
    assert_eq!(e["file_size"].as_u64(), Some(body.len() as u64), "file_size");
    assert!(body.len() > 500, "test file is too small for range tests");
    Setup { app, schema_id, export_id, url, signed, body }
}

async fn get(app: &TestApp, url: &str) -> reqwest::Response {
    app.client.get(url).send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_shape_and_signature_recipe() {
    let s = setup().await;
    let sg = &s.signed;
    assert!(is_uuid(&sg.team), "team id {}", sg.team);
    assert_eq!(sg.export, s.export_id);
    assert_eq!(sg.file, format!("{NAME}.csv"));
    // exactly {public-url}/files/teams/{team_id}/{export_id}/{name}.csv?expires={unix}&token={sig}
    assert_eq!(s.url, sg.url(&s.app.base_url));

    // expires: now + url_ttl (3600 s in tests), and the same instant as expiresAt
    let ttl = sg.expires - now();
    assert!((3500..=3700).contains(&ttl), "expires {} is {ttl} s from now, url_ttl is 3600", sg.expires);
    let v: Value =
        s.app.get(&format!("/v1/exports/{}/download", s.export_id)).send().await.unwrap().json().await.unwrap();
    let exp_at = v["expiresAt"].as_str().expect("expiresAt");
    let t = chrono::DateTime::parse_from_rfc3339(exp_at).expect("expiresAt is ISO 8601");
    let fresh = parse_url(&s.app.base_url, v["url"].as_str().unwrap());
    assert_eq!(t.timestamp(), fresh.expires, "expiresAt {exp_at} vs expires={}", fresh.expires);
    assert!(exp_at.ends_with('Z') && exp_at.len() == 24, "expiresAt {exp_at} not like 2024-01-31T12:00:00.000Z");

    // the token is HMAC-SHA256(key, "GET\n" + path + "\n" + expires), base64url, no padding
    assert_eq!(
        sg.token,
        sign(&sg.path(), sg.expires),
        "token is not base64url(HMAC-SHA256(key, \"GET\\n\" + path + \"\\n\" + expires))"
    );

    // a URL built here with that recipe is accepted
    let mine = Signed { expires: now() + 120, token: String::new(), ..sg.clone() };
    let mine = Signed { token: sign(&mine.path(), mine.expires), ..mine };
    let r = get(&s.app, &mine.url(&s.app.base_url)).await;
    assert_eq!(r.status(), 200, "self-signed URL");
    assert_eq!(r.bytes().await.unwrap().to_vec(), s.body);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_head_headers() {
    let s = setup().await;
    let len = s.body.len().to_string();
    let check = |r: &reqwest::Response, what: &str| {
        assert_eq!(r.status(), 200, "{what}");
        assert_eq!(header(r, "content-type"), "text/csv; charset=utf-8", "{what}");
        assert_eq!(header(r, "content-disposition"), format!("attachment; filename=\"{NAME}.csv\""), "{what}");
        assert_eq!(header(r, "content-length"), len, "{what}");
        assert_eq!(header(r, "accept-ranges"), "bytes", "{what}");
        let etag = header(r, "etag");
        assert!(!etag.is_empty(), "{what}: empty ETag");
        etag
    };
    let r = get(&s.app, &s.url).await;
    let etag_get = check(&r, "GET");
    assert_eq!(r.bytes().await.unwrap().to_vec(), s.body, "GET body is stable");

    let r = s.app.client.head(&s.url).send().await.unwrap();
    let etag_head = check(&r, "HEAD");
    assert_eq!(etag_get, etag_head, "HEAD and GET ETag");
    assert!(r.bytes().await.unwrap().is_empty(), "HEAD has no body");

    // the same file through a fresh URL has the same ETag
    let url2 = s.app.download_url(&s.export_id).await;
    let r = get(&s.app, &url2).await;
    assert_eq!(check(&r, "GET fresh URL"), etag_get, "ETag of the same file");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests() {
    let s = setup().await;
    let n = s.body.len();
    let cases: [(&str, usize, usize); 3] =
        [("bytes=0-99", 0, 99), ("bytes=-50", n - 50, n - 1), ("bytes=100-", 100, n - 1)];
    for (range, first, last) in cases {
        let r = s.app.client.get(&s.url).header("range", range).send().await.unwrap();
        assert_eq!(r.status(), 206, "Range: {range}");
        assert_eq!(header(&r, "content-range"), format!("bytes {first}-{last}/{n}"), "Range: {range}");
        assert_eq!(header(&r, "content-length"), (last - first + 1).to_string(), "Range: {range}");
        let b = r.bytes().await.unwrap();
        assert_eq!(&b[..], &s.body[first..=last], "Range: {range} body");
    }
    for range in [format!("bytes={n}-"), format!("bytes={}-{}", n + 10, n + 20)] {
        let r = s.app.client.get(&s.url).header("range", &range).send().await.unwrap();
        assert_eq!(r.status(), 416, "unsatisfiable Range: {range}");
    }
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_gives_304() {
    let s = setup().await;
    let r = get(&s.app, &s.url).await;
    let etag = header(&r, "etag");
    let r = s.app.client.get(&s.url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304, "If-None-Match: {etag}");
    assert!(r.bytes().await.unwrap().is_empty(), "304 has no body");
    let r = s.app.client.get(&s.url).header("if-none-match", "\"something-else\"").send().await.unwrap();
    assert_eq!(r.status(), 200, "If-None-Match with another ETag");
    assert_eq!(r.bytes().await.unwrap().to_vec(), s.body);
    s.app.stop().await;
}

/// Flips the first character of a token to another base64url character.
fn alter_token(t: &str) -> String {
    let first = t.chars().next().unwrap();
    let repl = if first == 'A' { 'B' } else { 'A' };
    format!("{repl}{}", &t[1..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_urls_are_forbidden() {
    let s = setup().await;
    let base = &s.app.base_url;
    let sg = &s.signed;

    // another real export of the same team, with its own valid URL
    let other = export(&s.app, &s.schema_id).await;
    let other_id = other["id"].as_str().unwrap().to_string();
    let other_signed = parse_url(base, &s.app.download_url(&other_id).await);

    let mut cases: Vec<(&str, String)> = vec![
        ("token altered", Signed { token: alter_token(&sg.token), ..sg.clone() }.url(base)),
        ("token truncated", Signed { token: sg.token[..sg.token.len() - 1].to_string(), ..sg.clone() }.url(base)),
        ("token empty", Signed { token: String::new(), ..sg.clone() }.url(base)),
        ("expires altered (+1)", Signed { expires: sg.expires + 1, ..sg.clone() }.url(base)),
        ("expires altered (+86400)", Signed { expires: sg.expires + 86_400, ..sg.clone() }.url(base)),
        ("other export id", Signed { export: other_id.clone(), ..sg.clone() }.url(base)),
        (
            "other export's token on this path",
            Signed { token: other_signed.token.clone(), expires: other_signed.expires, ..sg.clone() }.url(base),
        ),
        ("unknown export id", Signed { export: uuid::Uuid::now_v7().to_string(), ..sg.clone() }.url(base)),
        ("unknown team id", Signed { team: uuid::Uuid::now_v7().to_string(), ..sg.clone() }.url(base)),
        ("other name", Signed { file: "invoices_2024-01-01_2024-12-31.csv".into(), ..sg.clone() }.url(base)),
        ("other extension", Signed { file: format!("{NAME}.csv.gz"), ..sg.clone() }.url(base)),
        ("missing token", format!("{base}{}?expires={}", sg.path(), sg.expires)),
        ("missing expires", format!("{base}{}?token={}", sg.path(), sg.token)),
        ("no query", format!("{base}{}", sg.path())),
    ];
    // the original still works, so every 403 below is due to the change
    cases.insert(0, ("original", s.url.clone()));
    for (what, url) in cases {
        let r = get(&s.app, &url).await;
        if what == "original" {
            assert_eq!(r.status(), 200, "{what}: {url}");
            continue;
        }
        let status = r.status().as_u16();
        assert_eq!(status, 403, "{what}: {url} answered {status}, want 403");
        helpers::assert_error(r, 403).await;
    }
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_teams_path_is_forbidden() {
    let s = setup().await;
    let team_b = helpers::cli(&s.app.data_dir, &["teams", "create", "team-b"]);
    let team_b = team_b.lines().find(|l| is_uuid(l.trim())).unwrap_or(team_b.trim()).trim().to_string();
    assert!(is_uuid(&team_b), "`teams create` printed {team_b:?}, not a team id");
    assert_ne!(team_b, s.signed.team);
    let url = Signed { team: team_b, ..s.signed.clone() }.url(&s.app.base_url);
    let r = get(&s.app, &url).await;
    helpers::assert_error(r, 403).await;
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_link_is_403_and_says_so() {
    let s = setup().await;
    let past = now() - 10;
    let expired = Signed { expires: past, token: sign(&s.signed.path(), past), ..s.signed.clone() };
    let r = get(&s.app, &expired.url(&s.app.base_url)).await;
    let msg = helpers::assert_error(r, 403).await;
    assert!(msg.to_lowercase().contains("expired"), "message for an expired link: {msg:?}");

    // a tampered link is not reported as expired
    let bad = Signed { token: alter_token(&s.signed.token), ..s.signed.clone() };
    let msg = helpers::assert_error(get(&s.app, &bad.url(&s.app.base_url)).await, 403).await;
    assert!(!msg.to_lowercase().contains("expired"), "a bad signature is not an expired link: {msg:?}");
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_export_is_404() {
    let s = setup().await;
    let r = s.app.delete(&format!("/v1/exports/{}", s.export_id)).send().await.unwrap();
    assert_eq!(r.status(), 200, "DELETE export");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "Export deleted successfully");
    let r = get(&s.app, &s.url).await;
    helpers::assert_error(r, 404).await;
    let r = s.app.client.head(&s.url).send().await.unwrap();
    assert_eq!(r.status(), 404, "HEAD after delete");
    s.app.stop().await;
}
