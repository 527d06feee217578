//! Secret redaction for `ccsfs sessions export --redact`: finds credentials in transcript text
//! and replaces each with `[REDACTED:<kind>]`, counting what it replaced per kind. Pure (no
//! I/O); the `regex` crate's matching is linear in the input, so a hostile or multi-MB
//! transcript cannot make it backtrack for ever.
//!
//! Entry points:
//! - [`redact`] / [`redact_counted`] work on plain text (the markdown export).
//! - [`redact_json_text`] works on raw JSON or JSONL text (the JSON export): it rewrites only
//!   the string literals that hold a secret, so every other byte stays as it was.
//! - [`redact_json`] walks a `serde_json::Value`. Both JSON forms redact inside the decoded
//!   string and re-encode it, so the replacement can never break the JSON (a PEM whose
//!   newlines are `\n` escapes in the raw line is real newlines once decoded; the text rules
//!   match both). Object *keys* are never rewritten
//!   (a key is schema, not data: rewriting one would change the record's shape, and secrets
//!   do not live in keys), but a key is used as context: the string value of a key such as
//!   `"password"`, `"api_key"`, `"client_secret"` or `"access_token"` is redacted whole.
//!   Numbers, booleans and nulls are never changed (that would change the value's type).
//!
//! Kinds (the `<kind>` in `[REDACTED:<kind>]`, and the keys of [`Counts`]):
//! - `anthropic-key`: `sk-ant-api03-…`, `sk-ant-admin01-…`, any `sk-ant-` + 32 or more chars.
//! - `anthropic-oauth`: `sk-ant-oat01-…` (access) and `sk-ant-ort01-…` (refresh) tokens.
//! - `github-token`: `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_` + 36 or more alnum, and
//!   `github_pat_` + 22 + `_` + 59.
//! - `aws-access-key-id`: `AKIA`/`ASIA` + 16 uppercase alnum, as a whole word.
//! - `aws-secret-key`: a 40-char mixed-case base64 word within 200 bytes of an access key id,
//!   or the value of an `aws_secret_access_key` / `SecretAccessKey` assignment.
//! - `google-api-key`: `AIza` + 35 chars.
//! - `slack-token`: `xoxb-`/`xoxp-`/`xoxa-`/`xoxr-`/`xoxs-`/`xoxe-`/`xoxo-`/`xapp-` + digits +
//!   `-` + 8 or more chars; `slack-webhook`: `https://hooks.slack.com/services/T…/B…/…`.
//! - `private-key`: a PEM block `-----BEGIN … PRIVATE KEY-----` … `-----END … PRIVATE
//!   KEY-----`, with real newlines or with `\n` escapes as in raw JSON; a block cut off before
//!   its END line is redacted up to the end of its base64 lines.
//! - `jwt`: `eyJ` + three base64url segments of 8 or more chars each, dot-separated.
//! - `bearer-token`: the token after `Bearer ` (16 or more token chars, at least one digit).
//! - `url-password`: the password in `scheme://user:password@host`.
//! - `password`, `secret`, `token`, `api-key`: the VALUE of an assignment whose key ends in
//!   password/passwd/passphrase, secret/secret_key/private_key, token, api_key/apikey/api-key
//!   (any case, any prefix: `DB_PASSWORD`, `client_secret`, `GITHUB_TOKEN`, `x-api-key`). The
//!   forms: `key=value` anywhere (env, URL query, INI, code), `key: value` when the key is
//!   quoted (JSON, Python, `'k' => v`) or starts a line (YAML, HTTP headers), and CLI flags
//!   `--key value` / `--key=value`. Values may be double- or single-quoted (only the inside is
//!   replaced) or bare (up to whitespace or `"'`,;&|<>()]}`).
//! - `card-number`: 13–19 digits, bare or in groups separated by one kind of space/dash, with
//!   a card network prefix (2-series/5 Mastercard, 3 Amex/JCB/Diners, 4 Visa, 6 Discover/
//!   UnionPay/Maestro) and a valid Luhn check digit.
//!
//! When two findings overlap, a specific format (the list above down to `jwt`, plus
//! `card-number`) wins over a contextual one (assignments, bearer, URL password), so
//! `token=ghp_…` counts as `github-token`, not `token`.
//!
//! Deliberately NOT redacted (the near-miss corpus in `tests/data/redact_corpus.txt`):
//! - an assignment without a value (`password=`, `password:` at the end of a line), a word
//!   that is not an assignment (`the password is wrong`), `==` comparisons;
//! - placeholder values: `<token>`, `${TOKEN}`, `$TOKEN`, `%TOKEN%`, `{token}`, `{{ … }}`,
//!   masks made of `*`, `x`, `.`, `•`, `…`, `#`, `-`, `_`; `your_token_here`/`YOUR_API_KEY`
//!   (an ALL_CAPS name is an env var reference, not a value); literals `null`, `none`, `nil`,
//!   `true`, `false`, `undefined`, `redacted`, and the key word itself (`password=password`);
//!   a value that is already `[REDACTED…` (so redaction is idempotent);
//! - bare values that are code, not data: a call (`token = getToken()`), a dotted path
//!   (`self.token`, `process.env.TOKEN`), a type (`password: str`), an English word after a
//!   flag in prose (`the --token flag`, `--password to`);
//! - `sk-ant` in prose, short `ghp_` strings, git SHAs, UUIDs, `AKIA` inside a word, base64
//!   that is not a JWT, `eyJ` without two more segments, digit runs that fail Luhn or have no
//!   card prefix (epoch timestamps start with 1, `2024…` is no Mastercard range), phone
//!   numbers, decimals (`0.4111…`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Every kind this module can report, in the order of the module comment.
pub const KINDS: &[&str] = &[
    ANTHROPIC_KEY,
    ANTHROPIC_OAUTH,
    GITHUB_TOKEN,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_KEY,
    GOOGLE_API_KEY,
    SLACK_TOKEN,
    SLACK_WEBHOOK,
    PRIVATE_KEY,
    JWT,
    BEARER_TOKEN,
    URL_PASSWORD,
    PASSWORD,
    SECRET,
    TOKEN,
    API_KEY,
    CARD_NUMBER,
];

const ANTHROPIC_KEY: &str = "anthropic-key";
const ANTHROPIC_OAUTH: &str = "anthropic-oauth";
const GITHUB_TOKEN: &str = "github-token";
const AWS_ACCESS_KEY_ID: &str = "aws-access-key-id";
const AWS_SECRET_KEY: &str = "aws-secret-key";
const GOOGLE_API_KEY: &str = "google-api-key";
const SLACK_TOKEN: &str = "slack-token";
const SLACK_WEBHOOK: &str = "slack-webhook";
const PRIVATE_KEY: &str = "private-key";
const JWT: &str = "jwt";
const BEARER_TOKEN: &str = "bearer-token";
const URL_PASSWORD: &str = "url-password";
const PASSWORD: &str = "password";
const SECRET: &str = "secret";
const TOKEN: &str = "token";
const API_KEY: &str = "api-key";
const CARD_NUMBER: &str = "card-number";

/// How many secrets of each kind were replaced. `Display` prints `kind: n, kind: n` in kind
/// order, or `none`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<&'static str, usize>);

impl Counts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` replacements of `kind`.
    pub fn add(&mut self, kind: &'static str, n: usize) {
        if n > 0 {
            *self.0.entry(kind).or_insert(0) += n;
        }
    }

    /// Adds every count of `other` (e.g. per-file counts into a total).
    pub fn merge(&mut self, other: &Counts) {
        for (kind, n) in &other.0 {
            self.add(kind, *n);
        }
    }

    /// Replacements of `kind` (0 if none).
    pub fn get(&self, kind: &str) -> usize {
        self.0.get(kind).copied().unwrap_or(0)
    }

    /// Replacements of all kinds.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(kind, count)` pairs in kind order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        self.0.iter().map(|(k, n)| (*k, *n))
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (kind, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{kind}: {n}")?;
        }
        Ok(())
    }
}

/// Replaces every secret in `text` with `[REDACTED:<kind>]`. Borrows `text` when nothing was
/// found.
pub fn redact(text: &str) -> (Cow<'_, str>, Counts) {
    let mut counts = Counts::new();
    let out = redact_counted(text, &mut counts);
    (out, counts)
}

/// [`redact`], adding to a running `counts` (for many strings of one export).
pub fn redact_counted<'a>(text: &'a str, counts: &mut Counts) -> Cow<'a, str> {
    let hits = find(text);
    if hits.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for h in &hits {
        out.push_str(&text[at..h.start]);
        out.push_str("[REDACTED:");
        out.push_str(h.kind);
        out.push(']');
        at = h.end;
        counts.add(h.kind, 1);
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// Redacts every string inside `value` (object values, array items, nested to any depth), in
/// the decoded string, so the value stays valid JSON whatever is replaced. Keys are kept; a
/// string under a secret-named key (`password`, `api_key`, `client_secret`, `*_token`, …) is
/// replaced whole unless it is empty or a placeholder.
pub fn redact_json(value: &mut serde_json::Value, counts: &mut Counts) {
    use serde_json::Value;
    match value {
        Value::String(s) => redact_string(s, None, counts),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_json(v, counts)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) => redact_string(s, kind_for_key(key), counts),
                    _ => redact_json(v, counts),
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Redacts a JSON text (one document, or a JSONL stream of them) in place of its string
/// literals: every string VALUE is decoded, redacted like [`redact_json`] does (keys kept,
/// secret-named keys redact their string value whole) and re-encoded; everything else, and
/// every string that had no secret, stays byte-identical (key order, spacing, escapes). Returns
/// the input borrowed when nothing was found; an error if the input is not valid JSON.
pub fn redact_json_text<'a>(
    json: &'a str,
    counts: &mut Counts,
) -> Result<Cow<'a, str>, serde_json::Error> {
    for doc in serde_json::Deserializer::from_str(json).into_iter::<serde::de::IgnoredAny>() {
        doc?;
    }
    let b = json.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0; // json[..copied] is in `out` already
    // The kind named by the last key, and where its value may start (after the ':').
    let mut key: (Option<&'static str>, usize) = (None, usize::MAX);
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let mut escaped = false;
        while b[i] != b'"' {
            escaped |= b[i] == b'\\';
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        let end = i + 1; // the literal is json[start..end]
        i = end;
        let lit = &json[start..end];
        let next = json[end..].trim_start();
        if next.starts_with(':') {
            let decoded: Cow<'_, str> = if escaped {
                Cow::Owned(serde_json::from_str::<String>(lit)?)
            } else {
                Cow::Borrowed(&lit[1..lit.len() - 1])
            };
            key = (kind_for_key(&decoded), json.len() - next.len() + 1);
            continue;
        }
        let key_kind = if key.1 <= start && json[key.1..start].trim().is_empty() {
            key.0
        } else {
            None
        };
        let mut value = if escaped {
            serde_json::from_str::<String>(lit)?
        } else {
            lit[1..lit.len() - 1].to_owned()
        };
        let before = counts.total();
        redact_string(&mut value, key_kind, counts);
        if counts.total() != before {
            let out = out.get_or_insert_with(|| String::with_capacity(json.len()));
            out.push_str(&json[copied..start]);
            out.push_str(&serde_json::to_string(&value)?);
            copied = end;
        }
    }
    Ok(match out {
        None => Cow::Borrowed(json),
        Some(mut out) => {
            out.push_str(&json[copied..]);
            Cow::Owned(out)
        }
    })
}

fn redact_string(s: &mut String, key_kind: Option<&'static str>, counts: &mut Counts) {
    if let Cow::Owned(new) = redact_counted(s, counts) {
        *s = new;
        return;
    }
    if let Some(kind) = key_kind
        && !is_placeholder(s, true)
    {
        *s = format!("[REDACTED:{kind}]");
        counts.add(kind, 1);
    }
}

/// The kind of secret an object key names (`"password"`, `"apiKey"`, `"client_secret"`,
/// `"SecretAccessKey"`, `"refresh_token"`), if it names one. The key must END in the word,
/// so `"output_tokens"` or `"token_count"` are not secret keys.
fn kind_for_key(key: &str) -> Option<&'static str> {
    let k: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    kind_for_word(&k)
}

/// Classifies a normalised (lowercase alnum) key word.
fn kind_for_word(k: &str) -> Option<&'static str> {
    if k.ends_with("secretaccesskey") {
        Some(AWS_SECRET_KEY)
    } else if k.ends_with("password") || k.ends_with("passwd") || k.ends_with("passphrase") {
        Some(PASSWORD)
    } else if k.ends_with("secret") || k.ends_with("secretkey") || k.ends_with("privatekey") {
        Some(SECRET)
    } else if k.ends_with("token") {
        Some(TOKEN)
    } else if k.ends_with("apikey") {
        Some(API_KEY)
    } else {
        None
    }
}

// --- Matching -------------------------------------------------------------------------------

/// One replacement: `text[start..end]` becomes `[REDACTED:kind]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hit {
    start: usize,
    end: usize,
    kind: &'static str,
}

/// What a rule's match means.
#[derive(Clone, Copy)]
enum Rule {
    /// The whole match is a secret of this kind.
    Whole(&'static str),
    AnthropicKey,
    GoogleKey,
    Card,
    /// An assignment: the `kw` group names the kind, a value group is the secret. `cli_space`:
    /// the `--flag value` form, where prose (`the --token flag`) is likelier.
    Assign {
        cli_space: bool,
    },
    /// The `v` group is a secret of this kind (bearer token, URL password).
    Value(&'static str),
}

/// Tier 1: formats that are secrets by their shape. Tier 2 ([`CONTEXT`]): secrets by their
/// surroundings; dropped where they overlap a tier-1 hit.
static SPECIFIC: LazyLock<Vec<(Regex, Rule)>> = LazyLock::new(|| {
    let pem_begin = r"-----BEGIN[A-Z0-9 ]{0,30} PRIVATE KEY(?: BLOCK)?-----";
    let pem_end = r"-----END[A-Z0-9 ]{0,30} PRIVATE KEY(?: BLOCK)?-----";
    let nl = r"(?:\r?\n|\\r?\\n)";
    vec![
        (
            // A whole block; the body may hold headers (`Proc-Type: 4,ENCRYPTED`) and newlines
            // real or escaped, but no prose punctuation, so it cannot run on to a later key.
            format!(r"{pem_begin}(?:[A-Za-z0-9+/=\s,:-]|\\[nrt])*?{pem_end}"),
            Rule::Whole(PRIVATE_KEY),
        ),
        (
            // A block cut off before its END line: up to the end of its base64 lines.
            format!(r"{pem_begin}(?:[ \t]*{nl}[ \t]*[A-Za-z0-9+/=]+)*"),
            Rule::Whole(PRIVATE_KEY),
        ),
        (r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{32,}".into(), Rule::AnthropicKey),
        (
            r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?-u:\b)"
                .into(),
            Rule::Whole(GITHUB_TOKEN),
        ),
        (
            r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)".into(),
            Rule::Whole(AWS_ACCESS_KEY_ID),
        ),
        (r"(?-u:\b)AIza[0-9A-Za-z_-]{35}".into(), Rule::GoogleKey),
        (
            r"(?-u:\b)(?:xox[abeoprs]|xapp)-[0-9]+-[0-9A-Za-z-]{8,}".into(),
            Rule::Whole(SLACK_TOKEN),
        ),
        (
            r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+".into(),
            Rule::Whole(SLACK_WEBHOOK),
        ),
        (
            r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}".into(),
            Rule::Whole(JWT),
        ),
        (
            r"(?-u:\b)(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{3,6}){2,4})(?-u:\b)".into(),
            Rule::Card,
        ),
    ]
    .into_iter()
    .map(|(re, rule)| (Regex::new(&re).expect("redact pattern"), rule))
    .collect()
});

static CONTEXT: LazyLock<Vec<(Regex, Rule)>> = LazyLock::new(|| {
    // Key words; the key must end in one (any prefix, any case).
    let kw = r"(?P<kw>(?i:password|passwd|passphrase|secret[_-]?access[_-]?key|secret[_-]?key|private[_-]?key|secret|token|api[_-]?key))";
    // A value: "double" (escaped quotes too, as in raw JSON), 'single', or bare. A bare value
    // never starts with `=` or `~` (`==`, `=~` are comparisons) and ends at a `\n`, `\t`,
    // `\r` or `\"` escape (raw JSON text: the escape is not part of the value).
    let value = |first_extra: &str| {
        format!(
            r#"(?:\\?"(?P<dq>(?:[^"\\\n]|\\[^"\n])*)\\?"|'(?P<sq>[^'\n]*)'|(?P<uq>[^\s"'`,;&|<>()\]}}=~\\{first_extra}](?:[^\s"'`,;&|<>()\]}}\\]|\\[^nrt"])*))"#
        )
    };
    let v = value("");
    let v_cli = value("-");
    vec![
        // key=value anywhere (env, INI, TOML, URL query, code, `-e KEY=v`).
        (
            format!(r#"{kw}\\?["']?[ \t]*=[ \t]*{v}"#),
            Rule::Assign { cli_space: false },
        ),
        // key: value at the start of a line (YAML, headers, `- key: v`, `export`).
        (
            format!(r"(?m:^)[ \t]*(?:-[ \t]+)?[A-Za-z0-9_.-]*{kw}[ \t]*:[ \t]*{v}"),
            Rule::Assign { cli_space: false },
        ),
        // "key": value, 'key': value, "key" => value (JSON, Python, Ruby, PHP).
        (
            format!(r#"\\?["'][A-Za-z0-9_. -]*{kw}\\?["'][ \t]*(?::|=>)[ \t]*{v}"#),
            Rule::Assign { cli_space: false },
        ),
        // --key value
        (
            format!(r"--[A-Za-z0-9_-]*{kw}[ \t]+{v_cli}"),
            Rule::Assign { cli_space: true },
        ),
        (
            r"(?-u:\b)(?i:bearer)[ \t]+(?P<v>[A-Za-z0-9._~+/-]{16,}=*)".into(),
            Rule::Value(BEARER_TOKEN),
        ),
        (
            r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@"'<>]+:(?P<v>[^\s/@"'<>]+)@"#.into(),
            Rule::Value(URL_PASSWORD),
        ),
    ]
    .into_iter()
    .map(|(re, rule)| (Regex::new(&re).expect("redact pattern"), rule))
    .collect()
});

/// A bare or quoted 40-char AWS secret candidate (checked for boundaries and mixed case).
static AWS_SECRET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9/+]{40}").expect("redact pattern"));

/// How far from an AWS access key id its secret may be.
const AWS_PAIR_WINDOW: usize = 200;

/// All replacements in `text`, sorted and non-overlapping.
fn find(text: &str) -> Vec<Hit> {
    let mut specific = Vec::new();
    for (re, rule) in SPECIFIC.iter() {
        for m in re.find_iter(text) {
            if let Some((kind, len)) = specific_kind(*rule, text, m.start(), m.as_str()) {
                specific.push(Hit {
                    start: m.start(),
                    end: m.start() + len,
                    kind,
                });
            }
        }
    }
    let mut hits = disjoint(specific);
    let mut context = Vec::new();
    for h in hits.iter().filter(|h| h.kind == AWS_ACCESS_KEY_ID) {
        aws_secrets_near(text, h, &mut context);
    }
    for (re, rule) in CONTEXT.iter() {
        for c in re.captures_iter(text) {
            if let Some(hit) = context_hit(*rule, text, &c) {
                context.push(hit);
            }
        }
    }
    if context.is_empty() {
        return hits;
    }
    // Context hits yield to specific ones: `token=ghp_…` is a github-token.
    let context = disjoint(context);
    let mut merged = Vec::with_capacity(hits.len() + context.len());
    let mut s = hits.iter().peekable();
    for c in context {
        while let Some(h) = s.next_if(|h| h.end <= c.start) {
            merged.push(*h);
        }
        if s.peek().is_some_and(|h| h.start < c.end) {
            continue;
        }
        merged.push(c);
    }
    merged.extend(s);
    hits = merged;
    hits
}

/// Sorts `hits` and drops each that overlaps an earlier one (earliest start, then longest,
/// wins).
fn disjoint(mut hits: Vec<Hit>) -> Vec<Hit> {
    hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits {
        if out.last().is_none_or(|l| l.end <= h.start) {
            out.push(h);
        }
    }
    out
}

/// The kind of a tier-1 match `m` at `text[start..]`, and how much of it is the secret.
fn specific_kind(rule: Rule, text: &str, start: usize, m: &str) -> Option<(&'static str, usize)> {
    match rule {
        Rule::Whole(kind) => Some((kind, m.len())),
        Rule::AnthropicKey => Some(if m.starts_with("sk-ant-o") {
            (ANTHROPIC_OAUTH, m.len())
        } else {
            (ANTHROPIC_KEY, m.len())
        }),
        Rule::GoogleKey => {
            let next = text.as_bytes().get(start + m.len());
            let ok = next.is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-'));
            ok.then_some((GOOGLE_API_KEY, m.len()))
        }
        Rule::Card => card_len(text, start, m).map(|len| (CARD_NUMBER, len)),
        Rule::Assign { .. } | Rule::Value(_) => None,
    }
}

fn context_hit(rule: Rule, text: &str, c: &Captures<'_>) -> Option<Hit> {
    let (kind, v, quoted, cli_space) = match rule {
        Rule::Assign { cli_space } => {
            let kw = c
                .name("kw")?
                .as_str()
                .to_ascii_lowercase()
                .replace(['_', '-'], "");
            let kind = kind_for_word(&kw)?;
            let (v, quoted) = match (c.name("dq"), c.name("sq"), c.name("uq")) {
                (Some(v), _, _) | (_, Some(v), _) => (v, true),
                (_, _, Some(v)) => (v, false),
                _ => return None,
            };
            (kind, v, quoted, cli_space)
        }
        Rule::Value(kind) => {
            let v = c.name("v")?;
            if kind == BEARER_TOKEN && !v.as_str().bytes().any(|b| b.is_ascii_digit()) {
                return None;
            }
            (kind, v, false, false)
        }
        _ => return None,
    };
    let s = v.as_str();
    if is_placeholder(s, quoted) {
        return None;
    }
    if !quoted {
        // A call (`getToken()`), an index (`form['password']`): code, not a value.
        if text[v.end()..].starts_with(['(', '[']) {
            return None;
        }
        if cli_space && STOP_WORDS.contains(&s.to_ascii_lowercase().as_str()) {
            return None;
        }
        if is_code(s) {
            return None;
        }
    }
    Some(Hit {
        start: v.start(),
        end: v.end(),
        kind,
    })
}

/// English words that follow a flag in prose (`pass the --token flag`): not values.
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "argument",
    "as",
    "flag",
    "for",
    "from",
    "if",
    "in",
    "is",
    "it",
    "of",
    "on",
    "option",
    "or",
    "parameter",
    "that",
    "the",
    "then",
    "to",
    "when",
    "with",
];

/// Words a bare value takes in code (`password: str`, `token = await …`), never a secret.
const CODE_WORDS: &[&str] = &[
    "await",
    "bool",
    "bytes",
    "getpass",
    "input",
    "new",
    "none",
    "null",
    "nil",
    "optional",
    "self",
    "str",
    "string",
    "this",
    "undefined",
];

/// A bare value that is code: a type or keyword, or a dotted path (`self.token`,
/// `process.env.TOKEN`, `args.password`).
fn is_code(v: &str) -> bool {
    if CODE_WORDS.contains(&v.to_ascii_lowercase().as_str()) {
        return true;
    }
    let ident = |p: &str| {
        let mut b = p.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    };
    v.contains('.') && v.split('.').all(ident)
}

/// Not a secret but a stand-in for one: empty, a template or env reference, a mask, a
/// placeholder name, a literal, or an earlier redaction.
fn is_placeholder(v: &str, quoted: bool) -> bool {
    let t = v.trim();
    if t.is_empty() || t.starts_with("[REDACTED") {
        return true;
    }
    if t.starts_with(['$', '%', '{', '<']) || (t.starts_with('`') && quoted) {
        return true;
    }
    if t.chars()
        .all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '•' | '…' | '#' | '-' | '_' | '?'))
    {
        return true;
    }
    let l = t.to_ascii_lowercase();
    const LITERALS: &[&str] = &[
        "null",
        "none",
        "nil",
        "true",
        "false",
        "undefined",
        "redacted",
        "hidden",
        "masked",
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "changeit",
    ];
    if LITERALS.contains(&l.as_str()) {
        return true;
    }
    if l.starts_with("your")
        || l.ends_with("_here")
        || l.ends_with("-here")
        || l.contains("placeholder")
        || l.starts_with("example")
        || l.starts_with("xxx")
        || l.ends_with("...")
        || l.ends_with('…')
    {
        return true;
    }
    // An ALL_CAPS name (`TOKEN`, `GITHUB_TOKEN`) refers to an env var; a real value has
    // lowercase or digits.
    t.len() >= 2
        && t.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        && t.bytes().any(|b| b.is_ascii_uppercase())
}

/// A card-number candidate `m` at `text[start..]`: 13–19 digits, one kind of separator, a
/// card network prefix, valid Luhn, and not part of a decimal. A grouped run with trailing
/// groups too many (`4111 1111 1111 1111 2024`) is checked without them; returns the length
/// of the card number within `m`.
fn card_len(text: &str, start: usize, m: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if start > 0 && matches!(bytes[start - 1], b'.' | b',') {
        return None;
    }
    let end = start + m.len();
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let groups: Vec<&str> = m.split([' ', '-']).collect();
    if groups.len() == 1 {
        return card_digits_ok(m).then_some(m.len());
    }
    if m.contains(' ') && m.contains('-') {
        return None;
    }
    (3..=groups.len()).rev().find_map(|n| {
        let digits = groups[..n].concat();
        // The n groups and the n - 1 separators between them.
        card_digits_ok(&digits).then_some(digits.len() + n - 1)
    })
}

fn card_digits_ok(d: &str) -> bool {
    let b = d.as_bytes();
    if !(13..=19).contains(&b.len()) {
        return false;
    }
    let prefix2 = (b[0] - b'0') * 10 + (b[1] - b'0');
    let prefix4: u32 = d[..4].parse().unwrap_or(0);
    let network = match b[0] {
        b'4' => true,
        b'5' => (50..=55).contains(&prefix2),
        b'2' => (2221..=2720).contains(&prefix4),
        b'3' => matches!(prefix2, 30 | 34 | 35 | 36 | 37 | 38 | 39),
        b'6' => true,
        _ => false,
    };
    network && luhn(b)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Finds the 40-char secret that sits next to an access key id (credentials.csv, `aws
/// configure` output, a pasted pair): a mixed-case base64 word within [`AWS_PAIR_WINDOW`]
/// bytes. Mixed case keeps git SHAs (lowercase hex) out.
fn aws_secrets_near(text: &str, id: &Hit, out: &mut Vec<Hit>) {
    let mut lo = id.start.saturating_sub(AWS_PAIR_WINDOW);
    while !text.is_char_boundary(lo) {
        lo -= 1;
    }
    let mut hi = (id.end + AWS_PAIR_WINDOW).min(text.len());
    while !text.is_char_boundary(hi) {
        hi += 1;
    }
    let bytes = text.as_bytes();
    let b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'=');
    for m in AWS_SECRET.find_iter(&text[lo..hi]) {
        let (s, e) = (lo + m.start(), lo + m.end());
        if (s > 0 && b64(bytes[s - 1])) || bytes.get(e).is_some_and(|b| b64(*b)) {
            continue;
        }
        let w = m.as_str();
        if w.bytes().any(|b| b.is_ascii_uppercase()) && w.bytes().any(|b| b.is_ascii_lowercase()) {
            out.push(Hit {
                start: s,
                end: e,
                kind: AWS_SECRET_KEY,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const CORPUS: &str = include_str!("../tests/data/redact_corpus.txt");

    /// The corpus cases: (line of the header, expected counts, text).
    fn corpus() -> Vec<(usize, Counts, String)> {
        let mut cases: Vec<(usize, Counts, Vec<&str>)> = Vec::new();
        for (n, line) in CORPUS.lines().enumerate() {
            if let Some(expect) = line.strip_prefix("=== ") {
                let mut counts = Counts::new();
                if expect != "none" {
                    for part in expect.split(", ") {
                        let (kind, k) = part.split_once(':').expect("kind:n");
                        let kind = KINDS
                            .iter()
                            .find(|k| **k == kind)
                            .unwrap_or_else(|| panic!("line {}: unknown kind {kind}", n + 1));
                        counts.add(kind, k.parse().expect("count"));
                    }
                }
                cases.push((n + 1, counts, Vec::new()));
            } else if let Some(case) = cases.last_mut() {
                case.2.push(line);
            }
        }
        cases
            .into_iter()
            .map(|(n, c, lines)| {
                // Blank and `#` lines between cases belong to no case.
                let mut lines = lines;
                while lines
                    .last()
                    .is_some_and(|l| l.is_empty() || l.starts_with('#'))
                {
                    lines.pop();
                }
                (n, c, lines.join("\n"))
            })
            .collect()
    }

    #[test]
    fn corpus_secrets_and_near_misses() {
        let cases = corpus();
        let (mut secrets, mut misses) = (0, 0);
        let mut failures = Vec::new();
        for (line, expect, text) in &cases {
            let (out, counts) = redact(text);
            if &counts != expect {
                failures.push(format!(
                    "corpus line {line}: found {counts}, want {expect}\n  text: {text}\n  out:  {out}"
                ));
                continue;
            }
            if expect.is_empty() {
                misses += 1;
                assert!(
                    matches!(out, Cow::Borrowed(_)),
                    "corpus line {line} changed"
                );
            } else {
                secrets += expect.total();
                assert_eq!(
                    out.matches("[REDACTED:").count(),
                    expect.total(),
                    "line {line}"
                );
                for (kind, n) in expect.iter() {
                    let tag = format!("[REDACTED:{kind}]");
                    assert_eq!(out.matches(&tag).count(), n, "line {line}: {out}");
                }
            }
            // Idempotent: redacted text has nothing left to redact.
            let (again, more) = redact(&out);
            assert!(
                more.is_empty(),
                "line {line}: second pass found {more}: {again}"
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        println!(
            "corpus: {} cases, {secrets} secrets, {misses} near-miss texts",
            cases.len()
        );
        assert!(secrets >= 50 && misses >= 25, "the corpus shrank");
        // Every kind is exercised.
        let mut seen = Counts::new();
        cases.iter().for_each(|(_, c, _)| seen.merge(c));
        for kind in KINDS {
            assert!(seen.get(kind) > 0, "no corpus case for {kind}");
        }
    }

    #[test]
    fn replaces_only_the_value_and_keeps_quotes() {
        let cases = [
            (
                "DB_PASSWORD=hunter2 next",
                "DB_PASSWORD=[REDACTED:password] next",
            ),
            (
                r#"{"password": "p@ss w0rd", "user": "a"}"#,
                r#"{"password": "[REDACTED:password]", "user": "a"}"#,
            ),
            (
                "mysql --password hunter2 -h db",
                "mysql --password [REDACTED:password] -h db",
            ),
            ("token='abc123def'", "token='[REDACTED:token]'"),
            (
                "GITHUB_TOKEN=ghp_RFImCgHaPiZzGFOsDwO1y2A5HbT2rb7jFW2x",
                "GITHUB_TOKEN=[REDACTED:github-token]",
            ),
            (
                "postgres://app:Tr0ub4dor3@db:5432/x",
                "postgres://app:[REDACTED:url-password]@db:5432/x",
            ),
            (
                "card: 4111 1111 1111 1111 2024",
                "card: [REDACTED:card-number] 2024",
            ),
            (
                "  api_key: abc123\n  other: 1",
                "  api_key: [REDACTED:api-key]\n  other: 1",
            ),
            (
                "a\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\nz",
                "a\n[REDACTED:private-key]\nz",
            ),
            (
                r"x\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\n",
                r"x\n[REDACTED:private-key]\n",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input).0, want, "input: {input}");
        }
    }

    #[test]
    fn counts_display_and_merge() {
        let mut c = Counts::new();
        assert_eq!(c.to_string(), "none");
        c.add(GITHUB_TOKEN, 1);
        c.add(ANTHROPIC_KEY, 2);
        c.add(JWT, 0);
        assert_eq!(c.to_string(), "anthropic-key: 2, github-token: 1");
        let mut d = Counts::new();
        d.add(GITHUB_TOKEN, 3);
        d.merge(&c);
        assert_eq!((d.get(GITHUB_TOKEN), d.total()), (4, 6));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"anthropic-key":2,"github-token":4}"#
        );
    }

    #[test]
    fn luhn_and_card_prefixes() {
        assert!(luhn(b"4111111111111111") && luhn(b"378282246310005"));
        assert!(!luhn(b"4111111111111112"));
        assert!(card_digits_ok("2223003122003222")); // 2-series Mastercard
        assert!(!card_digits_ok("1111111111111117")); // passes Luhn, no network
        assert!(!card_digits_ok("411111111111")); // too short
    }

    #[test]
    fn secret_keys_must_end_in_the_word() {
        for (key, kind) in [
            ("password", Some(PASSWORD)),
            ("DB_PASSWORD", Some(PASSWORD)),
            ("apiKey", Some(API_KEY)),
            ("x-api-key", Some(API_KEY)),
            ("client_secret", Some(SECRET)),
            ("SecretAccessKey", Some(AWS_SECRET_KEY)),
            ("refresh_token", Some(TOKEN)),
            ("output_tokens", None),
            ("token_count", None),
            ("passwordless", None),
            ("sessionId", None),
        ] {
            assert_eq!(kind_for_key(key), kind, "{key}");
        }
    }

    /// A transcript record with secrets in nested strings, under secret-named keys, and a PEM
    /// whose newlines are `\n` escapes in the raw line (real newlines once decoded).
    const RECORD: &str = r#"{"parentUuid":"3f2b8c1e-9a4d-4e6f-8b21-0c5d7e9f1a2b","isSidechain":false,"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":"$ cat .env\nANTHROPIC_API_KEY=sk-ant-api03-8ISsWbV9J6Das4VuRAhzjRZlchCl24o2rOugvkZ189XdkyHTUXNoGEQUVwdW3edC2fXAnCwjJe3J-Sg6VARK689Ev7UxyAA\nDB_PASSWORD=\"hunter2\"\n-----BEGIN OPENSSH PRIVATE KEY-----\nwR3qDwd5Dg2Duz3EUbQD808qi2ugat0SVNwfCnz72KwZ\n-----END OPENSSH PRIVATE KEY-----\n"},{"type":"tool_use","name":"mcp__db__connect","input":{"host":"db","password":"Tr0ub4dor&3","token":"","port":5432,"api_key":"${API_KEY}"}}]},"uuid":"9a4d4e6f-8b21-0c5d-7e9f-1a2b3f2b8c1e","timestamp":"2025-06-01T12:00:00.000Z","usage":{"input_tokens":3,"output_tokens":10}}"#;

    #[test]
    fn json_value_stays_valid_and_other_fields_identical() {
        let original: serde_json::Value = serde_json::from_str(RECORD).unwrap();
        let mut v = original.clone();
        let mut counts = Counts::new();
        redact_json(&mut v, &mut counts);
        assert_eq!(
            counts.to_string(),
            "anthropic-key: 1, password: 2, private-key: 1"
        );
        let line = serde_json::to_string(&v).unwrap();
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v);
        let content = &v["message"]["content"];
        let text = content[0]["content"].as_str().unwrap();
        assert_eq!(
            text,
            "$ cat .env\nANTHROPIC_API_KEY=[REDACTED:anthropic-key]\nDB_PASSWORD=\"[REDACTED:password]\"\n[REDACTED:private-key]\n"
        );
        let input = &content[1]["input"];
        assert_eq!(input["password"], "[REDACTED:password]");
        // Placeholders, empty strings and numbers under secret keys are left alone.
        assert_eq!(
            (&input["token"], &input["api_key"], &input["port"]),
            (
                &original["message"]["content"][1]["input"]["token"],
                &original["message"]["content"][1]["input"]["api_key"],
                &original["message"]["content"][1]["input"]["port"]
            )
        );
        for k in [
            "parentUuid",
            "isSidechain",
            "type",
            "uuid",
            "timestamp",
            "usage",
        ] {
            assert_eq!(v[k], original[k], "{k}");
        }
        // Nothing to redact: the value is untouched.
        let mut clean = original["usage"].clone();
        redact_json(&mut clean, &mut counts);
        assert_eq!(clean, original["usage"]);
    }

    #[test]
    fn json_text_changes_only_the_strings_with_secrets() {
        let mut counts = Counts::new();
        let out = redact_json_text(RECORD, &mut counts).unwrap();
        assert_eq!(
            counts.to_string(),
            "anthropic-key: 1, password: 2, private-key: 1"
        );
        // Same result as the Value walk...
        let mut v: serde_json::Value = serde_json::from_str(RECORD).unwrap();
        redact_json(&mut v, &mut Counts::new());
        assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), v);
        // ...and byte-identical around the two rewritten strings (key order, spacing).
        let (a, b) = (RECORD.as_bytes(), out.as_bytes());
        let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let suffix = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        assert!(RECORD[..prefix].ends_with(r#""content":"$ cat .env\nANTHROPIC_API_KEY="#));
        assert!(RECORD[RECORD.len() - suffix..].starts_with(r#"","token":"","port":5432"#));
        // A JSONL stream of two records; a clean one comes back borrowed.
        let two = format!("{RECORD}\n{RECORD}\n");
        let mut c2 = Counts::new();
        let out2 = redact_json_text(&two, &mut c2).unwrap();
        assert_eq!(out2, format!("{out}\n{out}\n"));
        assert_eq!(c2.total(), 2 * counts.total());
        let clean = r#"{"a":"b\"c","n":[1,2,{"k":"v"}]}"#;
        assert!(matches!(
            redact_json_text(clean, &mut c2),
            Ok(Cow::Borrowed(_))
        ));
        // Malformed input is an error, not a half-redacted line.
        assert!(redact_json_text(r#"{"password":"x""#, &mut c2).is_err());
    }

    /// ~10 MB of transcript-like JSONL (prose, code, numbers, ids, base64, a few secrets):
    /// linear-time matching keeps this well under a second in release.
    #[test]
    fn ten_megabytes_quickly() {
        let snippets = [
            r#"{"type":"assistant","message":{"content":[{"type":"text","text":"I'll look at the failing test first. The function `parse_config` returns an error when the password field is missing; let me check the token handling in src/auth.rs and the 1234 retries."}]},"uuid":"3f2b8c1e-9a4d-4e6f-8b21-0c5d7e9f1a2b","timestamp":"2025-06-01T12:00:00.000Z"}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"fn main() {\n    let token = get_token();\n    let x: Vec<u64> = (0..1718000000000).step_by(997).take(20).collect();\n    println!(\"{:?} {}\", x, 4111111111111112);\n}\n"}]},"usage":{"input_tokens":1234,"output_tokens":567}}"#,
            r#"{"type":"user","message":{"content":"commit 9067d421c0897410ef1b3058f54fb13ebac7da37 Merge: 4f39e09 846c6b8 Author: Dev <dev@example.com> Date: 2024-01-15 12:34:56 +0100 — café naïve 日本語 ✓"}}"#,
            r#"{"type":"user","message":{"content":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg== YI4wr2Q1UT4b7Cg1uX2adODH+dsxwyigHYoPF8aSJW7KwcVgXh+BYpnUjH+cq24OrTglRM97ch6t8s5U"}}"#,
            r#"{"type":"user","message":{"content":"export GITHUB_TOKEN=ghp_RFImCgHaPiZzGFOsDwO1y2A5HbT2rb7jFW2x\nDB_PASSWORD=hunter2\n"}}"#,
        ];
        let mut text = String::with_capacity(10 << 20);
        let mut i = 0usize;
        while text.len() < 10 << 20 {
            text.push_str(snippets[i % snippets.len()]);
            text.push('\n');
            i += 1;
        }
        let secrets = (0..i).filter(|k| k % snippets.len() == 4).count();
        let t = Instant::now();
        let (out, counts) = redact(&text);
        let plain = t.elapsed();
        assert_eq!(
            (counts.get(GITHUB_TOKEN), counts.get(PASSWORD)),
            (secrets, secrets)
        );
        assert!(!out.contains("ghp_") && !out.contains("hunter2"));
        let t = Instant::now();
        let mut jc = Counts::new();
        let json = redact_json_text(&text, &mut jc).unwrap();
        let as_json = t.elapsed();
        assert_eq!(jc, counts);
        assert!(!json.contains("ghp_") && !json.contains("hunter2"));
        let mb = text.len() as f64 / (1 << 20) as f64;
        println!(
            "redact: {mb:.1} MB in {plain:.2?} ({:.0} MB/s); redact_json_text: {as_json:.2?} ({:.0} MB/s)",
            mb / plain.as_secs_f64(),
            mb / as_json.as_secs_f64()
        );
        assert!(plain.as_secs_f64() < 5.0 && as_json.as_secs_f64() < 5.0);
    }

    /// Hostile input: long runs that almost match (no closing PEM line, endless digits,
    /// `password=` repeated) stay linear.
    #[test]
    fn hostile_input_stays_fast() {
        let mut text = String::new();
        text.push_str("-----BEGIN RSA PRIVATE KEY-----");
        text.push_str(&"A".repeat(1 << 20));
        text.push_str(&"1".repeat(1 << 20));
        text.push_str(&"password=".repeat(100_000));
        text.push_str(&"eyJ".repeat(100_000));
        text.push_str(&"\"token\": ".repeat(100_000));
        let t = Instant::now();
        let (out, _) = redact(&text);
        println!("hostile {} MB: {:.2?}", text.len() >> 20, t.elapsed());
        assert!(t.elapsed().as_secs_f64() < 5.0);
        assert!(out.starts_with("[REDACTED:private-key]"));
    }
}
