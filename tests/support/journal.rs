//! Parser for journald's native protocol datagrams (what tracing-journald sends).
//!
//! Each datagram is a list of fields: `KEY=value\n`, or for values that may hold newlines,
//! `KEY\n` + little-endian u64 length + bytes + `\n`.

use std::collections::BTreeMap;

pub type Entry = BTreeMap<String, String>;

pub fn parse(mut data: &[u8]) -> Result<Entry, String> {
    let mut entry = Entry::new();
    while !data.is_empty() {
        let nl = data
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("field without newline")?;
        let line = &data[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8_lossy(&line[..eq]).into_owned();
            entry.insert(key, String::from_utf8_lossy(&line[eq + 1..]).into_owned());
            data = &data[nl + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[nl + 1..];
            if rest.len() < 8 {
                return Err(format!("{key}: truncated length"));
            }
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = rest
                .get(8..8 + len)
                .ok_or(format!("{key}: truncated value"))?;
            if rest.get(8 + len) != Some(&b'\n') {
                return Err(format!("{key}: value not followed by newline"));
            }
            entry.insert(key, String::from_utf8_lossy(value).into_owned());
            data = &rest[8 + len + 1..];
        }
    }
    Ok(entry)
}

#[test]
fn parses_both_field_encodings() {
    let mut d = b"PRIORITY=6\nMESSAGE\n".to_vec();
    d.extend_from_slice(&(5u64).to_le_bytes());
    d.extend_from_slice(b"a\nb c\nSESSION_ID=42\n");
    let e = parse(&d).unwrap();
    assert_eq!(e["PRIORITY"], "6");
    assert_eq!(e["MESSAGE"], "a\nb c");
    assert_eq!(e["SESSION_ID"], "42");
    assert!(parse(b"MESSAGE\n\x09\0\0\0\0\0\0\0ab").is_err());
}
