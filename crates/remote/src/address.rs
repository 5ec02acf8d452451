//! Where PROD is: a local path, or a file on another host.
//!
//! - `ssh://[user@]host[:port]/absolute/path.db`
//! - the scp form `[user@]host:path`: a `:` before any `/` makes it remote,
//!   as with scp; `./a:b` and `/x/a:b` are local files. A relative remote
//!   path is relative to the remote user's home folder, as with scp.
//! - An IPv6 host is written in brackets, in both forms (`ssh://[::1]:2222/p.db`,
//!   `me@[fe80::1]:p.db`); ssh is given it without them.

use std::fmt;
use std::path::{Path, PathBuf};

/// A database file on another host, reached with `ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// `user@host` or `host`, as `ssh` takes it.
    pub destination: String,
    pub port: Option<u16>,
    /// The path on the remote host.
    pub path: String,
}

impl RemoteFile {
    /// The host alone (no user), for messages.
    pub fn host(&self) -> &str {
        self.destination.rsplit('@').next().unwrap_or(&self.destination)
    }
}

impl fmt::Display for RemoteFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An IPv6 host goes back in its brackets.
        let destination = match self.host().contains(':') {
            true => {
                let user = &self.destination[..self.destination.len() - self.host().len()];
                format!("{user}[{}]", self.host())
            }
            false => self.destination.clone(),
        };
        match self.port {
            Some(port) => write!(f, "ssh://{destination}:{port}{}", self.path),
            None if self.path.starts_with('/') => write!(f, "ssh://{destination}{}", self.path),
            None => write!(f, "{destination}:{}", self.path),
        }
    }
}

impl serde::Serialize for RemoteFile {
    /// As its address.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A file given on the command line or in a deployment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Local(PathBuf),
    Remote(RemoteFile),
}

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address}: {why}")]
pub struct BadAddress {
    pub address: String,
    pub why: &'static str,
}

impl Address {
    /// Reads `text` as scp and ssh do (see the module's docs).
    pub fn parse(text: &str) -> Result<Address, BadAddress> {
        let bad = |why| BadAddress {
            address: text.to_owned(),
            why,
        };
        if let Some(rest) = text.strip_prefix("ssh://") {
            let (authority, path) = match rest.find('/') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => return Err(bad("an ssh:// address needs an absolute path after the host")),
            };
            let (destination, port) = match unbracket(authority).map_err(bad)? {
                (destination, Some(after)) => match after {
                    "" => (destination, None),
                    _ => (
                        destination,
                        Some(
                            after
                                .strip_prefix(':')
                                .and_then(|p| p.parse::<u16>().ok())
                                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
                        ),
                    ),
                },
                (_, None) => match authority.rsplit_once(':') {
                    Some((d, p)) => (
                        d.to_owned(),
                        Some(
                            p.parse::<u16>()
                                .map_err(|_| bad("the port is not a number from 1 to 65535"))?,
                        ),
                    ),
                    None => (authority.to_owned(), None),
                },
            };
            if port == Some(0) {
                return Err(bad("the port is not a number from 1 to 65535"));
            }
            check_destination(&destination).map_err(bad)?;
            if path.len() < 2 {
                return Err(bad("an ssh:// address needs a file path after the host"));
            }
            return Ok(Address::Remote(RemoteFile {
                destination,
                port,
                path: path.to_owned(),
            }));
        }
        // scp's form with an IPv6 host: [user@][host]:path.
        if let (Some(open), Some(close)) = (text.find('['), text.find("]:")) {
            if open < close && text.find('/').is_none_or(|slash| close < slash) {
                let (destination, _) = unbracket(&text[..close + 1]).map_err(bad)?;
                let path = &text[close + 2..];
                check_destination(&destination).map_err(bad)?;
                if path.is_empty() {
                    return Err(bad("a remote address needs a file path after the ':'"));
                }
                return Ok(Address::Remote(RemoteFile {
                    destination,
                    port: None,
                    path: path.to_owned(),
                }));
            }
        }
        match (text.find(':'), text.find('/')) {
            (Some(colon), slash) if slash.is_none_or(|s| colon < s) => {
                let (destination, path) = (&text[..colon], &text[colon + 1..]);
                check_destination(destination).map_err(bad)?;
                if path.is_empty() {
                    return Err(bad("a remote address needs a file path after the ':'"));
                }
                Ok(Address::Remote(RemoteFile {
                    destination: destination.to_owned(),
                    port: None,
                    path: path.to_owned(),
                }))
            }
            _ => Ok(Address::Local(PathBuf::from(text))),
        }
    }

    /// Reads a path given as an OS string: a path that is not UTF-8 is local.
    pub fn of_path(path: &Path) -> Result<Address, BadAddress> {
        match path.to_str() {
            Some(text) => Address::parse(text),
            None => Ok(Address::Local(path.to_owned())),
        }
    }

    pub fn remote(&self) -> Option<&RemoteFile> {
        match self {
            Address::Remote(r) => Some(r),
            Address::Local(_) => None,
        }
    }
}

/// `[user@][v6-host]…`: the destination without the brackets, and what
/// follows the `]`; `None` after it when there is no bracket.
fn unbracket(authority: &str) -> Result<(String, Option<&str>), &'static str> {
    let Some(open) = authority.find('[') else {
        return Ok((authority.to_owned(), None));
    };
    let close = authority.find(']').ok_or("a '[' without its ']'")?;
    let user = &authority[..open];
    let host = &authority[open + 1..close];
    if close < open || (!user.is_empty() && !user.ends_with('@')) || !host.contains(':') {
        return Err("only an IPv6 host goes in brackets, right after 'user@'");
    }
    Ok((format!("{user}{host}"), Some(&authority[close + 1..])))
}

/// `[user@]host`: no option-looking host, no space, nothing empty.
fn check_destination(destination: &str) -> Result<(), &'static str> {
    let host = destination.rsplit('@').next().unwrap_or(destination);
    let user = destination.strip_suffix(host).map(|u| u.trim_end_matches('@'));
    if host.is_empty() {
        return Err("no host before the ':'");
    }
    if host.starts_with('-') || user.is_some_and(|u| u.starts_with('-')) {
        return Err("a host or user may not begin with '-'");
    }
    if destination.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a host may not contain white space");
    }
    if destination.matches('@').count() > 1 {
        return Err("more than one '@'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(destination: &str, port: Option<u16>, path: &str) -> Address {
        Address::Remote(RemoteFile {
            destination: destination.into(),
            port,
            path: path.into(),
        })
    }

    #[test]
    fn reads_addresses_as_scp_and_ssh_do() {
        let cases = [
            ("ssh://db1/srv/app/prod.db", remote("db1", None, "/srv/app/prod.db")),
            (
                "ssh://me@db1:2222/srv/prod.db",
                remote("me@db1", Some(2222), "/srv/prod.db"),
            ),
            ("db1:/srv/prod.db", remote("db1", None, "/srv/prod.db")),
            ("me@db1:app/prod.db", remote("me@db1", None, "app/prod.db")),
            ("./a:b.db", Address::Local("./a:b.db".into())),
            ("/x/a:b.db", Address::Local("/x/a:b.db".into())),
            ("dir/a:b.db", Address::Local("dir/a:b.db".into())),
            ("prod.db", Address::Local("prod.db".into())),
            ("ssh://[::1]:2222/srv/p.db", remote("::1", Some(2222), "/srv/p.db")),
            ("ssh://me@[fe80::1]/srv/p.db", remote("me@fe80::1", None, "/srv/p.db")),
            ("[::1]:app/p.db", remote("::1", None, "app/p.db")),
            ("me@[::1]:/srv/p.db", remote("me@::1", None, "/srv/p.db")),
        ];
        for (text, want) in cases {
            assert_eq!(Address::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_ssh_would_misread() {
        for text in [
            "ssh://db1",
            "ssh://db1:x/p.db",
            "ssh://db1:0/p.db",
            "ssh://-oProxyCommand=x/p.db",
            ":p.db",
            "db1:",
            "-oProxyCommand=x:p.db",
            "a@b@c:p.db",
            "ssh://[::1/p.db",
            "ssh://[::1]x/p.db",
            "ssh://[db1]/p.db",
            "[::1]:",
        ] {
            assert!(Address::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn prints_back_as_it_reads() {
        for text in [
            "ssh://me@db1:2222/srv/prod.db",
            "ssh://db1/srv/prod.db",
            "db1:app/prod.db",
            "ssh://me@[::1]:2222/srv/prod.db",
            "[::1]:app/prod.db",
        ] {
            let a = Address::parse(text).expect("parse");
            assert_eq!(a.remote().expect("remote").to_string(), text);
        }
    }
}
