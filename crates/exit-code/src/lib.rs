//! The one exit-code table shared by every binary of the workspace.
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | done (or identical) |
//! | 1 | differences found (`diff` and `plan` only) |
//! | 2 | bad input or usage |
//! | 3 | refused or aborted to protect data |
//! | 4 | I/O or internal error |
//!
//! Libraries classify their typed errors with [`Exit`]; binaries turn that into
//! a process exit status in one place ([`Exit::code`]).

/// What a run ended with, as a process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: the work was done, or there was nothing to do.
    Done,
    /// 1: differences were found (`diff` and `plan` only).
    Differences,
    /// 2: bad input or usage: a missing file, not a database, a directory, …
    BadInput,
    /// 3: refused or aborted to protect data; nothing was changed.
    Refused,
    /// 4: an I/O or internal error (disk full, an unexpected SQLite error).
    /// Not [`Exit::Refused`]'s "nothing was changed": the report says what was.
    Error,
}

impl Exit {
    /// The numeric process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Differences => 1,
            Exit::BadInput => 2,
            Exit::Refused => 3,
            Exit::Error => 4,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn table_matches_the_documented_codes() {
        let table = [
            (Exit::Done, 0),
            (Exit::Differences, 1),
            (Exit::BadInput, 2),
            (Exit::Refused, 3),
            (Exit::Error, 4),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }
}
