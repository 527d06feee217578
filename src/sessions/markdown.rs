//! `ccsfs sessions export --format markdown`: a readable transcript to give a fresh session as
//! context. User and assistant text in full, tool calls and their results in brief (name and
//! a cut of the input or output), each turn with its timestamp; thinking and Claude's own
//! bookkeeping records (snapshots, summaries, meta) are left out.

use serde_json::Value;

use super::export::Export;
use super::model::{one_line, user_prompt};

/// Characters of a tool call's input or a tool result shown.
const BRIEF: usize = 300;

fn brief(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    one_line(&text, BRIEF)
}

/// A fenced block that no backtick run inside `text` can close.
fn quote(text: &str) -> String {
    let mut fence = String::from("```");
    while text.contains(&fence) {
        fence.push('`');
    }
    format!("{fence}\n{text}\n{fence}\n")
}

fn turn(out: &mut String, who: &str, v: &Value) {
    let ts = v.get("timestamp").and_then(Value::as_str).unwrap_or("");
    out.push_str(&format!(
        "\n## {who}{}\n\n",
        if ts.is_empty() {
            String::new()
        } else {
            format!(" · {ts}")
        }
    ));
}

/// The markdown transcript of an export (already limited and redacted).
pub fn render(e: &Export) -> String {
    let mut out = format!("# Session {}\n\n", e.session_id);
    out.push_str(&format!(
        "- Project: `{}`\n",
        e.project_cwd.as_deref().unwrap_or(&e.project_dir)
    ));
    out.push_str(&format!("- Exported: {}\n", e.exported_at));
    if !e.models.is_empty() {
        out.push_str(&format!("- Models: {}\n", e.models.join(", ")));
    }
    out.push_str(&format!(
        "- Messages: {} ({} user, {} assistant)\n",
        e.counts.messages, e.counts.user, e.counts.assistant
    ));
    if let Some(l) = &e.limit {
        out.push_str(&format!(
            "- Limited to the last {} messages ({} earlier ones left out)\n",
            l.messages, l.dropped_messages
        ));
    }
    for r in &e.records {
        let Ok(v) = serde_json::from_str::<Value>(r.get()) else {
            continue;
        };
        match v.get("type").and_then(Value::as_str) {
            Some("user") => {
                if let Some(text) = user_prompt(&v) {
                    turn(&mut out, "User", &v);
                    out.push_str(&text);
                    out.push('\n');
                    continue;
                }
                let blocks = v
                    .pointer("/message/content")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let results: Vec<_> = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                    .collect();
                if results.is_empty() {
                    continue;
                }
                turn(&mut out, "Tool result", &v);
                for b in results {
                    let err = b.get("is_error").and_then(Value::as_bool) == Some(true);
                    let content = b.get("content").cloned().unwrap_or(Value::Null);
                    out.push_str(&format!(
                        "> {}{}\n",
                        if err { "(error) " } else { "" },
                        brief(&content)
                    ));
                }
            }
            Some("assistant") => {
                let Some(blocks) = v.pointer("/message/content").and_then(Value::as_array) else {
                    continue;
                };
                let mut body = String::new();
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => {
                            if let Some(t) = b.get("text").and_then(Value::as_str) {
                                body.push_str(t.trim());
                                body.push('\n');
                            }
                        }
                        Some("tool_use") => {
                            let name = b.get("name").and_then(Value::as_str).unwrap_or("tool");
                            let input = b.get("input").cloned().unwrap_or(Value::Null);
                            body.push_str(&format!("**Tool call** `{name}`\n"));
                            body.push_str(&quote(&brief(&input)));
                        }
                        _ => {}
                    }
                }
                if !body.is_empty() {
                    turn(&mut out, "Assistant", &v);
                    out.push_str(&body);
                }
            }
            _ => {}
        }
    }
    out
}
