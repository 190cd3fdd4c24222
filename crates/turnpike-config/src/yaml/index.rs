//! Where each node of a parsed YAML document was written, looked up by its path.
//!
//! Lookups fall back to the nearest recorded parent, so a path serde or validation invents
//! (a missing field, a value inside an alias) still gets a sensible position.

use std::collections::BTreeMap;

use yaml_rust2::scanner::Marker;

use crate::path;

/// A place in the source text; both numbers are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    /// The start of the file, for documents too empty to point anywhere else.
    pub(crate) const START: Self = Self { line: 1, column: 1 };

    /// yaml-rust2 counts lines from 1 but columns from 0.
    pub(super) fn of(mark: Marker) -> Self {
        Self {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// Where the mapping key naming this node was written; `None` for sequence items.
    pub(super) key: Option<Position>,
    pub(super) value: Position,
    /// An unquoted scalar, which env substitution may re-resolve (`port: ${PORT}`).
    pub(super) plain: bool,
}

/// Where each node of the document was written, by path (see [`crate::path`]).
#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    entries: BTreeMap<String, Entry>,
}

impl PathIndex {
    /// Where the value at `path` (or its nearest recorded ancestor) starts.
    pub(crate) fn value_pos(&self, path: &str) -> Position {
        self.nearest(path).map_or(Position::START, |e| e.value)
    }

    /// Where the key naming `path` was written; the value's position for sequence items
    /// and unrecorded paths.
    pub(crate) fn key_pos(&self, path: &str) -> Position {
        match self.entries.get(path) {
            Some(Entry { key: Some(key), .. }) => *key,
            _ => self.value_pos(path),
        }
    }

    /// True when the value at `path` was written as an unquoted scalar.
    pub(super) fn record(&mut self, path: String, entry: Entry) {
        self.entries.insert(path, entry);
    }

    pub(crate) fn is_plain(&self, path: &str) -> bool {
        self.entries.get(path).is_some_and(|e| e.plain)
    }

    fn nearest(&self, mut path: &str) -> Option<&Entry> {
        loop {
            if let Some(entry) = self.entries.get(path) {
                return Some(entry);
            }
            path = path::parent(path)?;
        }
    }

    /// Gives the copy at `to` the positions of the original below `from`, so an error in
    /// an aliased or merged value points at the text that defines it.
    pub(super) fn copy_below(&mut self, from: &str, to: &str) {
        let copies: Vec<(String, Entry)> = self
            .entries
            .range(from.to_owned()..)
            .take_while(|(p, _)| p.starts_with(from))
            .filter(|(p, _)| p.len() > from.len() && path::is_within(p, from))
            .map(|(p, e)| (format!("{to}{}", &p[from.len()..]), *e))
            .collect();
        self.entries.extend(copies);
    }

    pub(super) fn copy_entry(&mut self, from: &str, to: &str) {
        if let Some(entry) = self.entries.get(from).copied() {
            self.entries.insert(to.to_owned(), entry);
        }
    }
}
