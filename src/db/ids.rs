//! A result's id, team id and schema id are stored as the UUID's 16 bytes (migration 7), not
//! as its 36 characters of text: the `results` table and its three indexes (the id's, and
//! `(schema_id, created_at, id)`, `(team_id, created_at, id)`) hold them on every row, and the
//! smaller entries made a bulk import's inserts cheaper (see the README, "Import and upload").
//! Everywhere outside `db/` they stay the lowercase hyphenated text the API shows; the
//! functions here convert at that boundary. The byte order of the 16 bytes is the order of
//! their lowercase hex text, so ordering by id is unchanged.

use rusqlite::types::{Type, ValueRef};
use rusqlite::Row;

/// The 16 bytes of `text` when it is a UUID written as the API writes them (lowercase,
/// hyphenated); `None` for any other text (uppercase, without hyphens, not a UUID), which no
/// stored id equals: the text form of every stored id is exactly that.
pub(crate) fn key(text: &str) -> Option<[u8; 16]> {
    // 36 characters is the hyphenated form only (simple is 32, braced 38, urn 45)
    if text.len() != uuid::fmt::Hyphenated::LENGTH || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(text).ok().map(|u| u.into_bytes())
}

/// [`key`], for a value that is about to be stored: any other text is an error (the caller
/// passed an id no API answer made).
pub(crate) fn key_to_store(text: &str) -> rusqlite::Result<[u8; 16]> {
    key(text).ok_or_else(|| rusqlite::Error::ToSqlConversionFailure(format!("not a UUID: {text:?}").into()))
}

/// Column `i` of `row`, a 16-byte id, as a UUID.
pub(crate) fn uuid_at(row: &Row, i: usize) -> rusqlite::Result<uuid::Uuid> {
    from_ref(row.get_ref(i)?, i)
}

/// Column `i` of `row`, a 16-byte id, as the lowercase hyphenated text the API shows.
pub(crate) fn text_at(row: &Row, i: usize) -> rusqlite::Result<String> {
    Ok(uuid_at(row, i)?.to_string())
}

/// A 16-byte id read from column `i`; anything else there is reported, not guessed at.
pub(crate) fn from_ref(v: ValueRef, i: usize) -> rusqlite::Result<uuid::Uuid> {
    match v {
        ValueRef::Blob(b) => match <[u8; 16]>::try_from(b) {
            Ok(bytes) => Ok(uuid::Uuid::from_bytes(bytes)),
            Err(_) => Err(rusqlite::Error::FromSqlConversionFailure(
                i,
                Type::Blob,
                format!("{} bytes, not an id", b.len()).into(),
            )),
        },
        other => Err(rusqlite::Error::InvalidColumnType(i, "id".into(), other.data_type())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_form_the_api_writes_is_a_key() {
        let u = uuid::Uuid::now_v7();
        let text = u.to_string();
        assert_eq!(key(&text), Some(u.into_bytes()));
        assert_eq!(key(&text.to_uppercase()), None);
        assert_eq!(key(&u.simple().to_string()), None);
        assert_eq!(key(&u.braced().to_string()), None);
        assert_eq!(key(&u.urn().to_string()), None);
        assert_eq!(key("s1"), None);
        assert_eq!(key(&text.replace('-', "x")), None);
        assert!(key_to_store("s1").unwrap_err().to_string().contains("not a UUID"));
    }

    /// The bytes sort as the lowercase text does, so `ORDER BY id` is the order it was.
    #[test]
    fn byte_order_is_text_order() {
        // splitmix64: every byte position sees small and large hex digits
        let mut x: u64 = 7;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let z = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z ^ (z >> 31)
        };
        let mut ids: Vec<uuid::Uuid> = (0..2000).map(|_| uuid::Uuid::from_u64_pair(next(), next())).collect();
        let mut by_text = ids.clone();
        by_text.sort_by_key(|u| u.to_string());
        ids.sort_by_key(|u| *u.as_bytes());
        assert!(ids == by_text);
    }
}
