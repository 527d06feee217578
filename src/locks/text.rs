//! A file's path as one line of printable text, losslessly: how a lock record keeps the path
//! its file had (for `status` and the log) and how `status` shows it. UTF-8 stays as it is;
//! a backslash, control characters and bytes that are not UTF-8 are written as `\\`, `\n`,
//! `\t`, `\r` or `\xNN`, so a name can neither break a line nor collide with another name.

/// `bytes` as one line of text; `unescape` gives the bytes back.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes `escape` wrote as `text`; None when `text` is not its output.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next()? {
            b'\\' => out.push(b'\\'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_on_one_line() {
        for name in [
            &b"projects/p/s.jsonl"[..],
            b"projects/p/\xfe.jsonl",
            b"projects/p/inj\nhost=evil\n.jsonl",
            b"a\\b\\x41\t\r\x01\x7f",
            "projects/ünï/ç.jsonl".as_bytes(),
            b"",
        ] {
            let text = escape(name);
            assert!(!text.contains('\n') && !text.chars().any(char::is_control));
            assert_eq!(unescape(&text).as_deref(), Some(name), "{text}");
        }
        assert_eq!(escape(b"p/\xfe.jsonl"), "p/\\xfe.jsonl");
        assert_eq!(escape(b"a\nb"), "a\\nb");
        assert_eq!(escape("ü".as_bytes()), "ü");
    }

    #[test]
    fn different_names_never_share_a_text() {
        let names: [&[u8]; 5] = [
            b"\xfe.jsonl",
            b"\xfd.jsonl",
            b"\\xfe.jsonl",
            b"\xef\xbf\xbd.jsonl",
            b"?.jsonl",
        ];
        let texts: std::collections::HashSet<String> = names.iter().map(|n| escape(n)).collect();
        assert_eq!(texts.len(), names.len());
    }

    #[test]
    fn malformed_text_is_refused() {
        assert_eq!(unescape("a\\"), None);
        assert_eq!(unescape("a\\q"), None);
        assert_eq!(unescape("\\x4"), None);
        assert_eq!(unescape("\\xzz"), None);
    }
}
