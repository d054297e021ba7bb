//! Typed cells as bytes: how a workbook's rows travel from the formatting threads (which
//! turn rows into cells in parallel, like CSV) to the one thread that writes the workbook
//! in order. Internal to one export; never stored.

/// One cell of a workbook row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Empty,
    Text(&'a str),
    Number(f64),
    Bool(bool),
    /// Excel's serial number of a local date-time.
    DateTime(f64),
    /// Excel's serial number of a date.
    Date(f64),
    /// The row is over.
    RowEnd,
}

const EMPTY: u8 = 0;
const TEXT: u8 = 1;
const NUMBER: u8 = 2;
const TRUE: u8 = 3;
const FALSE: u8 = 4;
const DATETIME: u8 = 5;
const DATE: u8 = 6;
const ROW_END: u8 = 7;

/// Appends one cell.
pub fn put(cell: Cell, out: &mut Vec<u8>) {
    match cell {
        Cell::Empty => out.push(EMPTY),
        Cell::Text(t) => put_text(t.as_bytes(), out),
        Cell::Number(n) => put_f64(NUMBER, n, out),
        Cell::Bool(b) => out.push(if b { TRUE } else { FALSE }),
        Cell::DateTime(n) => put_f64(DATETIME, n, out),
        Cell::Date(n) => put_f64(DATE, n, out),
        Cell::RowEnd => out.push(ROW_END),
    }
}

/// Appends a text cell of UTF-8 bytes.
pub(super) fn put_text(t: &[u8], out: &mut Vec<u8>) {
    out.push(TEXT);
    out.extend_from_slice(&(t.len() as u32).to_le_bytes());
    out.extend_from_slice(t);
}

fn put_f64(tag: u8, n: f64, out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(&n.to_le_bytes());
}

/// Reads the cell at the start of `b`: it and the bytes it took; `None` when `b` ends
/// within it (the rest comes with the next write).
pub fn take(b: &[u8]) -> Option<(Cell<'_>, usize)> {
    let f64_at = |b: &[u8]| b.get(1..9).map(|x| f64::from_le_bytes(x.try_into().expect("8 bytes")));
    Some(match *b.first()? {
        EMPTY => (Cell::Empty, 1),
        TRUE => (Cell::Bool(true), 1),
        FALSE => (Cell::Bool(false), 1),
        ROW_END => (Cell::RowEnd, 1),
        NUMBER => (Cell::Number(f64_at(b)?), 9),
        DATETIME => (Cell::DateTime(f64_at(b)?), 9),
        DATE => (Cell::Date(f64_at(b)?), 9),
        TEXT => {
            let len = u32::from_le_bytes(b.get(1..5)?.try_into().expect("4 bytes")) as usize;
            let text = b.get(5..5 + len)?;
            // only put_text writes these, from &str
            (Cell::Text(std::str::from_utf8(text).expect("text cells are UTF-8")), 5 + len)
        }
        other => panic!("not a cell tag: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_back_whole_or_not_at_all() {
        let cells = [
            Cell::Text("Zürich"),
            Cell::Empty,
            Cell::Number(-0.5),
            Cell::Bool(true),
            Cell::Bool(false),
            Cell::DateTime(45_292.25),
            Cell::Date(45_292.0),
            Cell::RowEnd,
        ];
        let mut b = Vec::new();
        for c in cells {
            put(c, &mut b);
        }
        let mut at = 0;
        for c in cells {
            let (read, n) = take(&b[at..]).unwrap();
            assert_eq!(read, c);
            // a cut anywhere inside the cell gives nothing
            for cut in at..at + n {
                assert!(take(&b[at..cut]).is_none());
            }
            at += n;
        }
        assert_eq!(at, b.len());
    }
}
