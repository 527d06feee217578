//! Claude Code transcripts as ccsfs reads them: the project-dir encoding (Claude's own), the
//! few record fields the session commands look at (type, uuid, parentUuid, sessionId, cwd,
//! first prompt, model), and id rewriting done on the raw text so that every other byte of a
//! record stays as Claude wrote it. Pure: no file access.

use std::collections::HashMap;

use serde_json::Value;

/// Longest encoded project dir name before Claude shortens it and appends a hash.
pub const MAX_PROJECT_DIR: usize = 200;

/// Claude's hash for long project dir names: Java's `String.hashCode` over UTF-16 units.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, u| {
        h.wrapping_shl(5).wrapping_sub(h).wrapping_add(u as i32)
    })
}

/// `n` in base 36, as JavaScript's `Number.prototype.toString(36)` writes it.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The name of the dir under `projects/` that Claude keeps a cwd's sessions in, exactly as
/// Claude Code 2.x makes it (its bundled `$E`/`sanitizePath`): every UTF-16 unit outside
/// `[a-zA-Z0-9]` becomes `-` (so `/home/me/my.app` is `-home-me-my-app`, and a character
/// outside the BMP is `--`); a result longer than 200 is cut to 200 and followed by `-` and
/// `abs(hashCode(cwd))` in base 36.
pub fn project_dir_name(cwd: &str) -> String {
    let mut out = String::with_capacity(cwd.len());
    for c in cwd.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n('-', c.len_utf16()));
        }
    }
    if out.len() <= MAX_PROJECT_DIR {
        return out;
    }
    out.truncate(MAX_PROJECT_DIR);
    let h = (java_hash(cwd) as i64).unsigned_abs();
    format!("{out}-{}", base36(h))
}

/// Whether `s` has the shape of a UUID (`8-4-4-4-12` hex digits).
pub fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A record that is a message of the conversation (what `--limit` and the counts count).
pub fn is_message(v: &Value) -> bool {
    matches!(
        v.get("type").and_then(Value::as_str),
        Some("user" | "assistant")
    )
}

/// The text a user typed, when `v` is a user record carrying one (not a tool result, not a
/// meta record Claude adds, not a slash command's echo).
pub fn user_prompt(v: &Value) -> Option<String> {
    if v.get("type").and_then(Value::as_str) != Some("user")
        || v.get("isMeta").and_then(Value::as_bool) == Some(true)
    {
        return None;
    }
    let content = v.get("message")?.get("content")?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => return None,
    };
    let t = text.trim();
    if t.is_empty() || t.starts_with("<command-") || t.starts_with("<local-command") {
        return None;
    }
    Some(t.to_string())
}

/// `s` on one line, at most `max` characters (an ellipsis marks a cut).
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let mut t: String = flat.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The model of an assistant record.
pub fn model(v: &Value) -> Option<&str> {
    if v.get("type").and_then(Value::as_str) != Some("assistant") {
        return None;
    }
    v.get("message")?.get("model")?.as_str()
}

/// Replaces every JSON string in `raw` that is exactly one of `map`'s keys (quoted UUIDs:
/// record ids, the session id) by its value. UUIDs need no escaping and the replacement has the
/// same length, so the text stays valid JSON and every other byte stays as it was.
pub fn rewrite_ids(raw: &str, map: &HashMap<String, String>) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut last = 0;
    let mut i = 0;
    while i + 38 <= b.len() {
        if b[i] == b'"'
            && b[i + 37] == b'"'
            && is_uuid(&b[i + 1..i + 37])
            && let Some(new) = map.get(&raw[i + 1..i + 37])
        {
            out.push_str(&raw[last..i + 1]);
            out.push_str(new);
            last = i + 37;
            i += 37;
            continue;
        }
        i += 1;
    }
    out.push_str(&raw[last..]);
    out
}

/// Replaces the `"cwd":<old>` field of a compact record with `"cwd":<new>` (both as JSON).
pub fn rewrite_cwd(raw: &str, old: &str, new: &str) -> String {
    let (Ok(o), Ok(n)) = (serde_json::to_string(old), serde_json::to_string(new)) else {
        return raw.to_string();
    };
    raw.replace(&format!("\"cwd\":{o}"), &format!("\"cwd\":{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_claude() {
        assert_eq!(project_dir_name("/home/me/my.app"), "-home-me-my-app");
        assert_eq!(project_dir_name("/a b/c_d/é"), "-a-b-c-d--");
        assert_eq!(project_dir_name("/x/😀"), "-x---");
        let long = format!("/{}", "a".repeat(250));
        // Both from node, running Claude's own function.
        assert_eq!(
            project_dir_name(&long),
            format!("-{}-feo44x", "a".repeat(199))
        );
        assert_eq!(project_dir_name("/x/😀/é"), "-x-----");
        // JavaScript: Math.abs(hash) with hash = 31*h + c over UTF-16 units.
        assert_eq!(java_hash("abc"), 96354);
        assert_eq!(base36(96354), "22ci");
    }

    #[test]
    fn rewrites_quoted_uuids_only() {
        let a = "11111111-2222-3333-4444-555555555555";
        let b = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
        let map = HashMap::from([(a.to_string(), b.to_string())]);
        let raw = format!(r#"{{"uuid":"{a}","x":"pre{a}","y":["{a}"]}}"#);
        assert_eq!(
            rewrite_ids(&raw, &map),
            format!(r#"{{"uuid":"{b}","x":"pre{a}","y":["{b}"]}}"#)
        );
    }
}
