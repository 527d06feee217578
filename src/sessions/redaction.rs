//! The adapter between `sessions export --redact` and the redaction engine (`crate::redact`):
//! a record is redacted in its string values (so the JSON stays valid and every record that
//! has no secret stays byte for byte as it was), a tool-results file as text; the counts per
//! kind add up over the whole export.

use std::collections::BTreeMap;

use super::export::Redactor;
use crate::redact::{self, Counts};

/// The redaction engine, counting as it goes.
#[derive(Default)]
pub struct Engine {
    counts: Counts,
}

impl Redactor for Engine {
    fn record(&mut self, raw: &str) -> Option<String> {
        let before = self.counts.total();
        let out = match redact::redact_json_text(raw, &mut self.counts) {
            Ok(text) => text.into_owned(),
            // Not JSON (cannot happen for a record): redact it as text.
            Err(_) => redact::redact_counted(raw, &mut self.counts).into_owned(),
        };
        (self.counts.total() != before).then_some(out)
    }

    fn text(&mut self, text: &str) -> Option<String> {
        let before = self.counts.total();
        let out = redact::redact_counted(text, &mut self.counts).into_owned();
        (self.counts.total() != before).then_some(out)
    }

    fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(k, n)| (k.to_string(), n as u64))
            .collect()
    }
}

impl Engine {
    /// The counts as the engine prints them (`kind: n, kind: n`, or `none`).
    pub fn summary(&self) -> String {
        self.counts.to_string()
    }
}
