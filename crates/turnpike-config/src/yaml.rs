//! YAML text to a `serde_json::Value` plus a [`PathIndex`] that remembers where every
//! node was written, so later errors (types, validation) can point at a line and column.
//!
//! Built on yaml-rust2's event parser because it reports a position for every event; the
//! document is resolved with the YAML 1.2 core schema, so `on`/`yes` stay strings.

mod index;
mod schema;

use std::collections::HashMap;

use serde_json::{Map, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::path;
use index::Entry;
pub(crate) use index::{PathIndex, Position};
pub(crate) use schema::resolve_plain;

/// A parsed document: its value, where each part of it was written, and structural
/// problems (duplicate keys and the like) that left a usable document behind.
#[derive(Debug)]
pub(crate) struct Document {
    pub(crate) value: Value,
    pub(crate) index: PathIndex,
    pub(crate) errors: Vec<YamlError>,
}

/// A problem found while reading the YAML itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub(crate) pos: Position,
    pub(crate) path: String,
    pub(crate) message: String,
}

/// Parses one YAML document; an empty file is `null`. Only a syntax error is `Err`: a
/// duplicate key keeps its first value, a bad key or extra document is left out, and the
/// rest of the file can still be checked.
pub(crate) fn parse(text: &str) -> Result<Document, YamlError> {
    parse_with(text, false)
}

/// [`parse`], optionally taking numbers and booleans as mapping keys (as their text).
pub(crate) fn parse_with(text: &str, text_keys: bool) -> Result<Document, YamlError> {
    let mut builder = Builder {
        text_keys,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        // Whatever was built before a syntax error is unreliable; report only the cause.
        return Err(YamlError {
            pos: Position::of(*e.marker()),
            path: String::new(),
            message: format!("YAML syntax error: {}", e.info()),
        });
    }
    let value = builder.root.unwrap_or(Value::Null);
    Ok(Document {
        value,
        index: builder.index,
        errors: builder.errors,
    })
}

/// Most values aliases may expand to, so a "billion laughs" file fails instead of
/// eating memory.
const ALIAS_EXPANSION_LIMIT: usize = 100_000;

const ONE_DOCUMENT: &str = "a configuration file holds one YAML document; \
     remove this `---` and everything after it, or merge the documents";

#[derive(Debug, Default)]
struct Builder {
    frames: Vec<Frame>,
    /// Anchor id to the anchored value and the path it was written at.
    anchors: HashMap<usize, (Value, Option<String>)>,
    index: PathIndex,
    errors: Vec<YamlError>,
    root: Option<Value>,
    documents: usize,
    expanded: usize,
    /// Numbers and booleans in key position become their text (OpenAPI's `200:`),
    /// instead of an error as in configuration files.
    text_keys: bool,
}

#[derive(Debug)]
struct Frame {
    /// `None` inside a mapping key: keys are names, not settings, so nothing is recorded.
    path: Option<String>,
    start: Marker,
    anchor: usize,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Seq(Vec<Value>),
    Map(MapFrame),
}

#[derive(Debug, Default)]
struct MapFrame {
    map: Map<String, Value>,
    /// The key waiting for its value.
    key: Option<Key>,
    first_key: Option<Marker>,
    /// Line of each key written here, to name the first one in a duplicate error.
    seen: HashMap<String, usize>,
    /// The value of a `<<` merge key, applied when the mapping ends.
    merge: Option<Value>,
}

#[derive(Debug)]
enum Key {
    Name(String, Marker),
    Merge,
    /// A key that was reported as an error; its value is parsed and dropped.
    Invalid,
}

/// A finished node on its way to its parent.
#[derive(Debug)]
struct Node {
    value: Value,
    mark: Marker,
    path: Option<String>,
    anchor: usize,
    plain: bool,
    /// For aliases: the path of the anchored original.
    alias_of: Option<String>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if matches!(ev, Event::DocumentStart) {
            self.documents += 1;
            if self.documents == 2 {
                self.error(mark, String::new(), ONE_DOCUMENT.to_owned());
            }
        }
        if self.documents > 1 {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => self.scalar(text, style, anchor, tag, mark),
            Event::SequenceStart(anchor, _) => self.open(Kind::Seq(Vec::new()), anchor, mark),
            Event::MappingStart(anchor, _) => {
                self.open(Kind::Map(MapFrame::default()), anchor, mark)
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => self.alias(id, mark),
            _ => {}
        }
    }
}

impl Builder {
    fn error(&mut self, mark: Marker, path: String, message: String) {
        self.errors.push(YamlError {
            pos: Position::of(mark),
            path,
            message,
        });
    }

    /// The path the next node will have, from the frame it is being added to.
    fn child_path(&self) -> Option<String> {
        let Some(frame) = self.frames.last() else {
            return Some(String::new());
        };
        let parent = frame.path.as_deref()?;
        match &frame.kind {
            Kind::Seq(items) => Some(path::index(parent, items.len())),
            Kind::Map(m) => match &m.key {
                Some(Key::Name(name, _)) => Some(path::key(parent, name)),
                // Recorded so merged values can later be traced back to their text.
                Some(Key::Merge) => Some(path::key(parent, "<<")),
                Some(Key::Invalid) | None => None,
            },
        }
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        anchor: usize,
        tag: Option<yaml_rust2::parser::Tag>,
        mut mark: Marker,
    ) {
        let forced_string =
            tag.is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str");
        let plain = style == TScalarStyle::Plain && !forced_string;
        // An omitted value (`key:`) is reported where the next token is; its key is a
        // better place to point at.
        if plain && text.is_empty() {
            if let Some(Frame {
                kind:
                    Kind::Map(MapFrame {
                        key: Some(Key::Name(_, key)),
                        ..
                    }),
                ..
            }) = self.frames.last()
            {
                mark = *key;
            }
        }
        let value = if plain {
            resolve_plain(&text)
        } else {
            Value::String(text)
        };
        let path = self.child_path();
        self.complete(Node {
            value,
            mark,
            path,
            anchor,
            plain,
            alias_of: None,
        });
    }

    fn open(&mut self, kind: Kind, anchor: usize, mark: Marker) {
        let path = self.child_path();
        self.frames.push(Frame {
            path,
            start: mark,
            anchor,
            kind,
        });
    }

    fn close(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let (value, mark) = match frame.kind {
            Kind::Seq(items) => (Value::Array(items), frame.start),
            Kind::Map(m) => {
                // A block mapping's start event is reported after its first key.
                let mark = match m.first_key {
                    Some(k) if k.index() < frame.start.index() => k,
                    _ => frame.start,
                };
                (
                    Value::Object(self.apply_merges(m, frame.path.as_deref())),
                    mark,
                )
            }
        };
        let node = Node {
            value,
            mark,
            path: frame.path,
            anchor: frame.anchor,
            plain: false,
            alias_of: None,
        };
        self.complete(node);
    }

    /// Adds the keys of the `<<` value that the mapping does not set itself; with a list
    /// of mappings, earlier ones win over later ones, as the YAML merge-key spec says.
    fn apply_merges(&mut self, m: MapFrame, path: Option<&str>) -> Map<String, Value> {
        let mut map = m.map;
        let Some(merge) = m.merge else { return map };
        let from = path.map(|p| path::key(p, "<<")).unwrap_or_default();
        let sources: Vec<(String, Value)> = match merge {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (path::index(&from, i), v))
                .collect(),
            other => vec![(from, other)],
        };
        for (from, source) in sources {
            let Value::Object(entries) = source else {
                continue;
            };
            for (k, v) in entries {
                if map.contains_key(&k) {
                    continue;
                }
                if let Some(p) = path {
                    let (src, dst) = (path::key(&from, &k), path::key(p, &k));
                    self.index.copy_entry(&src, &dst);
                    self.index.copy_below(&src, &dst);
                }
                map.insert(k, v);
            }
        }
        map
    }

    fn alias(&mut self, id: usize, mark: Marker) {
        let path = self.child_path();
        let Some((value, original)) = self.anchors.get(&id) else {
            let msg = "alias refers to an anchor that is not defined before it".to_owned();
            self.error(mark, path.unwrap_or_default(), msg);
            return self.complete(Node {
                value: Value::Null,
                mark,
                path: None,
                anchor: 0,
                plain: false,
                alias_of: None,
            });
        };
        let was_within_limit = self.expanded <= ALIAS_EXPANSION_LIMIT;
        self.expanded += count_nodes(value);
        if self.expanded <= ALIAS_EXPANSION_LIMIT {
            let (value, alias_of) = (value.clone(), original.clone());
            return self.complete(Node {
                value,
                mark,
                path,
                anchor: 0,
                plain: false,
                alias_of,
            });
        }
        if was_within_limit {
            let msg = format!(
                "aliases expand to more than {ALIAS_EXPANSION_LIMIT} values; write the document out instead"
            );
            self.error(mark, path.clone().unwrap_or_default(), msg);
        }
        self.complete(Node {
            value: Value::Null,
            mark,
            path,
            anchor: 0,
            plain: false,
            alias_of: None,
        });
    }

    /// Records a finished node in the index and hands it to its parent.
    fn complete(&mut self, node: Node) {
        if node.anchor != 0 {
            self.anchors
                .insert(node.anchor, (node.value.clone(), node.path.clone()));
        }
        if let Some(p) = &node.path {
            let key = match self.frames.last() {
                Some(Frame {
                    kind:
                        Kind::Map(MapFrame {
                            key: Some(Key::Name(_, k)),
                            ..
                        }),
                    ..
                }) => Some(Position::of(*k)),
                _ => None,
            };
            let entry = Entry {
                key,
                value: Position::of(node.mark),
                plain: node.plain,
            };
            self.index.record(p.clone(), entry);
            if let Some(original) = &node.alias_of {
                self.index.copy_below(original, p);
            }
        }
        self.attach(node);
    }

    fn attach(&mut self, node: Node) {
        let Some(frame) = self.frames.last_mut() else {
            self.root = Some(node.value);
            return;
        };
        let parent_path = frame.path.clone().unwrap_or_default();
        let m = match &mut frame.kind {
            Kind::Seq(items) => return items.push(node.value),
            Kind::Map(m) => m,
        };
        match m.key.take() {
            Some(Key::Name(name, _)) => {
                m.map.insert(name, node.value);
            }
            Some(Key::Merge) => match node.value {
                Value::Object(_) => m.merge = Some(node.value),
                Value::Array(ref items) if items.iter().all(Value::is_object) => {
                    m.merge = Some(node.value)
                }
                _ => {
                    let msg = "merge key `<<` needs a mapping or a list of mappings (e.g. `<<: *defaults`)";
                    self.error(node.mark, path::key(&parent_path, "<<"), msg.to_owned());
                }
            },
            Some(Key::Invalid) => {}
            None => {
                m.first_key.get_or_insert(node.mark);
                let key = self.key(node, &parent_path);
                if let Some(Frame {
                    kind: Kind::Map(m), ..
                }) = self.frames.last_mut()
                {
                    m.key = Some(key);
                }
            }
        }
    }

    /// Turns a finished node in key position into a [`Key`], reporting bad keys.
    fn key(&mut self, node: Node, parent: &str) -> Key {
        let name = match node.value {
            Value::String(name) => name,
            Value::Number(n) if self.text_keys => n.to_string(),
            Value::Bool(b) if self.text_keys => b.to_string(),
            other => {
                let what = describe(&other);
                let msg = format!(
                    "mapping keys must be strings, found {what}; quote the key if it is meant as text"
                );
                self.error(node.mark, parent.to_owned(), msg);
                return Key::Invalid;
            }
        };
        let Some(Frame {
            kind: Kind::Map(m), ..
        }) = self.frames.last_mut()
        else {
            return Key::Invalid;
        };
        if let Some(first) = m.seen.get(&name) {
            let msg = format!("duplicate key `{name}` (first defined at line {first})");
            self.error(node.mark, path::key(parent, &name), msg);
            return Key::Invalid;
        }
        m.seen.insert(name.clone(), node.mark.line());
        if node.plain && name == "<<" {
            return Key::Merge;
        }
        Key::Name(name, node.mark)
    }
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// Names a value's kind the way a YAML user would, for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a sequence".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        match parse(text) {
            Ok(d) => d,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn at(d: &Document, path: &str) -> (usize, usize) {
        let p = d.index.value_pos(path);
        (p.line, p.column)
    }

    #[test]
    fn positions_are_one_based_for_keys_and_values() {
        let d = doc(
            "server:\n  max_headers: 10\nroutes:\n  - name: a\n    paths: [/x, \"/y\"]\n  - {name: b}\n",
        );
        assert_eq!(at(&d, ""), (1, 1));
        assert_eq!(at(&d, "server"), (2, 3));
        assert_eq!(at(&d, "server.max_headers"), (2, 16));
        let key = d.index.key_pos("server.max_headers");
        assert_eq!((key.line, key.column), (2, 3));
        assert_eq!(at(&d, "routes[0]"), (4, 5));
        assert_eq!(at(&d, "routes[0].paths[1]"), (5, 17));
        assert_eq!(at(&d, "routes[1]"), (6, 5));
        assert_eq!(at(&d, "routes[1].name"), (6, 12));
        // Unrecorded paths fall back to the nearest recorded parent.
        assert_eq!(at(&d, "routes[1].upstream"), (6, 5));
        assert_eq!(at(&d, "nowhere.at.all"), (1, 1));
    }

    #[test]
    fn empty_values_point_at_their_key() {
        let d = doc("server:\n  via:\nroutes: []\n");
        assert_eq!(d.value["server"]["via"], Value::Null);
        assert_eq!(at(&d, "server.via"), (2, 3));
    }

    #[test]
    fn aliases_copy_the_value_and_its_positions() {
        let d = doc("a: &x {k: [1, 2]}\nb: *x\nc:\n  <<: *x\n  j: 3\n");
        assert_eq!(d.value["b"], serde_json::json!({"k": [1, 2]}));
        assert_eq!(d.value["c"], serde_json::json!({"k": [1, 2], "j": 3}));
        assert_eq!(at(&d, "b"), (2, 4));
        assert_eq!(at(&d, "b.k[1]"), (1, 15));
        assert_eq!(at(&d, "c.k[1]"), (1, 15));
    }

    #[test]
    fn merge_keeps_explicit_keys_and_earlier_sources() {
        let d = doc("a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n");
        assert_eq!(d.value["c"], serde_json::json!({"x": 1, "y": 3, "z": 2}));
        assert_eq!(at(&d, "c.z"), (2, 17));
    }

    #[test]
    fn structure_errors_keep_the_rest_of_the_document() {
        let d = doc("a: 1\na: 2\nb: 3\n");
        assert_eq!(d.value, serde_json::json!({"a": 1, "b": 3}));
        let e = &d.errors[0];
        assert_eq!((e.pos.line, e.pos.column, e.path.as_str()), (2, 1, "a"));
        assert_eq!(e.message, "duplicate key `a` (first defined at line 1)");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let d = doc(&text);
        assert!(
            d.errors
                .iter()
                .any(|e| e.message.contains("aliases expand to more than"))
        );
    }
}
