//! The masking key and the values derived from it. Every masked value is a
//! function of the key, the rule and the input only: the same input gives
//! the same output across tables and refreshes, and without the key an
//! output does not lead back to its input.

use std::io::{Read, Write};
use std::path::Path;

use fake::faker::name::en::{FirstName, LastName};
use fake::rand::SeedableRng;
use fake::Fake;
use rusqlite::types::{Value, ValueRef};

use crate::rules::Rule;
use crate::Error;

/// The secret masked values are derived from.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 32],
    /// Made for one plan's examples and never kept.
    pub throwaway: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("throwaway", &self.throwaway)
            .finish_non_exhaustive()
    }
}

const CONTEXT: &str = "refresh-dev 2026 mask key v1";

impl Key {
    /// A key from a key file's bytes (any file of at least 16 bytes: the
    /// key is derived from all of them).
    pub fn from_bytes(material: &[u8]) -> Key {
        Key {
            bytes: blake3::derive_key(CONTEXT, material),
            throwaway: false,
        }
    }

    /// The key itself, in hex: for the remote helper, inside the protocol
    /// (never on a command line, never in a file on PROD's host).
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key [`to_hex`](Key::to_hex) wrote.
    pub fn from_hex(hex: &str) -> Option<Key> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Key {
            bytes,
            throwaway: false,
        })
    }

    /// A name for the key that does not reveal it: a copy masked under
    /// another key is recognised by it.
    pub fn id(&self) -> String {
        blake3::keyed_hash(&self.bytes, b"refresh-dev key id").to_hex()[..16].to_owned()
    }

    /// New random key material, from the kernel (`/dev/urandom`).
    pub fn random_material() -> std::io::Result<Vec<u8>> {
        let mut material = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut material)?;
        Ok(material)
    }

    /// A key for one plan's examples, never written anywhere.
    pub fn throwaway() -> std::io::Result<Key> {
        let mut k = Key::from_bytes(&Key::random_material()?);
        k.throwaway = true;
        Ok(k)
    }

    /// Reads the key file at `path`, never through a link.
    pub fn read(path: &Path) -> Result<Key, Error> {
        let bad = |why: String| Error::Key {
            path: path.to_owned(),
            why,
        };
        let mut file = sqlite_file::sidefile::open_existing(path, false).map_err(|e| bad(e.to_string()))?;
        let mut material = Vec::new();
        file.read_to_end(&mut material)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        if material.len() < 16 {
            return Err(bad(format!(
                "holds {} bytes; a key file holds at least 16 random bytes",
                material.len()
            )));
        }
        Ok(Key::from_bytes(&material))
    }

    /// Writes `material` as a new key file at `path`, mode 0600, never over
    /// anything, and flushes it to disk.
    pub fn write_new(path: &Path, material: &[u8]) -> Result<(), Error> {
        let bad = |why: String| Error::Key {
            path: path.to_owned(),
            why,
        };
        let mut file = sqlite_file::sidefile::create_new(path, 0o600).map_err(|e| bad(e.to_string()))?;
        file.write_all(material)
            .and_then(|()| file.sync_all())
            .map_err(|e| bad(format!("cannot write: {e}")))
    }

    /// The keyed hash of `value` under `rule`: its bytes as SQLite's text
    /// of it (so 5 and '5' give the same), or a blob's bytes.
    fn digest(&self, rule: &str, value: ValueRef<'_>) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(&self.bytes);
        h.update(rule.as_bytes());
        h.update(&[0]);
        match value {
            ValueRef::Null => {}
            ValueRef::Integer(i) => {
                h.update(i.to_string().as_bytes());
            }
            ValueRef::Real(f) => {
                h.update(f.to_string().as_bytes());
            }
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                h.update(t);
            }
        }
        h
    }

    /// The masked value of `value` under `rule` (never called for `sql`
    /// rules, which SQLite evaluates). NULL stays NULL.
    pub fn mask(&self, rule: &Rule, value: ValueRef<'_>) -> Value {
        if matches!(value, ValueRef::Null) || *rule == Rule::Null {
            return Value::Null;
        }
        let tag = match rule {
            Rule::Email => "email",
            Rule::Name | Rule::FirstName | Rule::LastName => "name",
            Rule::Phone => "phone",
            Rule::Redact => "redact",
            Rule::Hash => "hash",
            Rule::KeepLast(_) | Rule::KeepFirst(_) => "keep",
            Rule::Null | Rule::Sql(_) => return Value::Null,
        };
        let hasher = self.digest(tag, value);
        let hash = hasher.finalize();
        let bytes = hash.as_bytes();
        let token = token(bytes);
        // A fake first and last name, drawn in that order from the hash:
        // only for the rules that show one (this runs once per value).
        let names = || -> (String, String) {
            let mut rng = fake::rand::rngs::StdRng::from_seed(*bytes);
            let first: String = FirstName().fake_with_rng(&mut rng);
            (first, LastName().fake_with_rng(&mut rng))
        };
        match rule {
            Rule::Email => {
                let (first, last) = names();
                Value::Text(format!(
                    "{}.{}.{token}@example.{}",
                    ascii_word(&first),
                    ascii_word(&last),
                    ["com", "net", "org"][(bytes[31] % 3) as usize]
                ))
            }
            Rule::Name => {
                let (first, last) = names();
                Value::Text(format!("{first} {last} {token}"))
            }
            Rule::FirstName => Value::Text(format!("{} {token}", names().0)),
            Rule::LastName => Value::Text(format!("{} {token}", names().1)),
            Rule::Phone => {
                let n = u64::from_le_bytes([
                    bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                ]);
                let d = format!("{:015}", n % 1_000_000_000_000_000);
                Value::Text(format!("+1 555 {} {} {}", &d[..5], &d[5..10], &d[10..]))
            }
            Rule::Redact => Value::Text(format!("[redacted {token}]")),
            Rule::Hash => Value::Text(hash.to_hex()[..32].to_owned()),
            Rule::KeepLast(n) | Rule::KeepFirst(n) => {
                let text = match value {
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Null => return Value::Null,
                };
                let mut out: Vec<char> = text.chars().collect();
                let keep = (*n).min(out.len());
                let range = if matches!(rule, Rule::KeepLast(_)) {
                    0..out.len() - keep
                } else {
                    keep..out.len()
                };
                let mut stream = hasher.finalize_xof();
                for c in &mut out[range] {
                    let mut b = [0u8; 1];
                    stream.fill(&mut b);
                    *c = match *c {
                        '0'..='9' => (b'0' + b[0] % 10) as char,
                        'a'..='z' => (b'a' + b[0] % 26) as char,
                        'A'..='Z' => (b'A' + b[0] % 26) as char,
                        other if other.is_alphanumeric() => (b'a' + b[0] % 26) as char,
                        other => other,
                    };
                }
                let masked: String = out.into_iter().collect();
                match value {
                    // An integer stays an integer (a STRICT column keeps its type).
                    ValueRef::Integer(_) => masked.parse::<i64>().map(Value::Integer).unwrap_or(Value::Text(masked)),
                    _ => Value::Text(masked),
                }
            }
            Rule::Null | Rule::Sql(_) => Value::Null,
        }
    }
}

/// A short, stable name for `text` (16 hex digits of its hash).
pub fn tag(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..16].to_owned()
}

/// A 12-character token of the keyed hash: lowercase letters and digits,
/// so that distinct inputs stay distinct also under NOCASE and RTRIM.
fn token(bytes: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut n = u64::from_le_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ]);
    (0..12)
        .map(|_| {
            let c = ALPHABET[(n & 31) as usize] as char;
            n >>= 5;
            c
        })
        .collect()
}

/// A name as the local part of an email: lowercase ASCII letters only.
fn ascii_word(name: &str) -> String {
    let w: String = name
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if w.is_empty() {
        "user".into()
    } else {
        w
    }
}

/// The stable sample's verdict for a row: whether the hash of its primary
/// key falls below `percent` (a plain hash: the same rows on every
/// refresh, whatever the key).
pub fn sampled(percent: f64, key: &[ValueRef<'_>]) -> bool {
    let mut h = blake3::Hasher::new();
    for v in key {
        match v {
            ValueRef::Null => h.update(b"n"),
            ValueRef::Integer(i) => h.update(i.to_string().as_bytes()),
            ValueRef::Real(f) => h.update(f.to_string().as_bytes()),
            ValueRef::Text(t) | ValueRef::Blob(t) => h.update(t),
        };
        h.update(&[0]);
    }
    let b = h.finalize();
    let n = u64::from_le_bytes(b.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    ((n % 1_000_000) as f64) < percent * 10_000.0
}
