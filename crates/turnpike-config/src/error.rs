//! What a user sees when a configuration is rejected: one [`ConfigError`] per problem,
//! each with file, line, column and the setting's path, collected into [`ConfigErrors`].

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration file, located at a line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", .file.display(), PathPrefix(.path))]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Where in the document, e.g. `routes[2].upstream`; empty for the file as a whole.
    pub path: String,
    /// What is wrong and what was expected instead.
    pub message: String,
}

/// Renders `path: `, or nothing for problems with the file as a whole.
struct PathPrefix<'a>(&'a str);

impl fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrors {
    /// The file was read but is wrong; every problem found is listed, in file order.
    #[error("{}", ErrorList(.0))]
    Invalid(Vec<ConfigError>),
    /// The file could not be read at all.
    #[error("{}: cannot read the configuration file: {source}", .file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfigErrors {
    /// The located problems; empty for [`ConfigErrors::Io`].
    pub fn errors(&self) -> &[ConfigError] {
        match self {
            Self::Invalid(errors) => errors,
            Self::Io { .. } => &[],
        }
    }
}

/// One error per line, then the count, so a long list still ends with its size.
struct ErrorList<'a>(&'a [ConfigError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in self.0 {
            writeln!(f, "{error}")?;
        }
        let n = self.0.len();
        write!(f, "{n} {}", if n == 1 { "error" } else { "errors" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(path: &str, message: &str) -> ConfigError {
        ConfigError {
            file: PathBuf::from("gw.yaml"),
            line: 3,
            column: 7,
            path: path.to_owned(),
            message: message.to_owned(),
        }
    }

    #[test]
    fn display_with_and_without_path() {
        assert_eq!(
            error("routes[0].upstream", "bad").to_string(),
            "gw.yaml:3:7: routes[0].upstream: bad"
        );
        assert_eq!(error("", "bad").to_string(), "gw.yaml:3:7: bad");
    }

    #[test]
    fn list_ends_with_count() {
        let one = ConfigErrors::Invalid(vec![error("a", "x")]);
        assert_eq!(one.to_string(), "gw.yaml:3:7: a: x\n1 error");
        let two = ConfigErrors::Invalid(vec![error("a", "x"), error("", "y")]);
        assert_eq!(
            two.to_string(),
            "gw.yaml:3:7: a: x\ngw.yaml:3:7: y\n2 errors"
        );
    }
}
