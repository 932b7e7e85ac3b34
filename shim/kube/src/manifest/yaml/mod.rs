//! YAML text to JSON values the way kubectl reads a manifest file, over saphyr-parser's events.
//!
//! kubectl (apimachinery `util/yaml.YAMLReader`) cuts a file into documents at lines that are
//! `---` alone, then converts each with sigs.k8s.io/yaml (go-yaml v2, YAML 1.1). This module does
//! the same: the same document split, go-yaml v2's scalar resolution (`scalar`), merge keys
//! (`<<`) applied in go-yaml's order, map keys made strings as Go does, and go-yaml's `\'` escape in
//! double-quoted scalars, which YAML 1.2 parsers refuse. Unlike kubectl, a key written twice in one
//! mapping is an error (podshim decodes strictly), aliases are bounded (alias bombs) and nesting is
//! bounded (stack depth).

pub mod emit;
mod fixes;
pub mod scalar;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};
use serde_json::{Map, Value};

use fixes::{
    fix_single_quote_escapes, indent_flow_line, indent_quoted_lines, tab_after_colon, Edits,
};
use scalar::{resolve_plain, resolve_tagged, Scalar, CORE_TAG};

/// How deep collections may nest (serde_yaml's limit, which podshim had before).
const MAX_DEPTH: usize = 128;
/// Nodes that aliases may add beyond this before their share of the document is checked.
const FREE_ALIAS_NODES: usize = 10_000;
/// How many times the nodes written out a document's aliases may add.
const MAX_ALIAS_FACTOR: usize = 10;
/// How many `\'` escapes, and how many tabs after a `:`, are rewritten in one document (each
/// costs a parse of the document).
const MAX_FIXES: usize = 100;

/// A YAML problem: where (1-based line and column of the file) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// A step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// One document: its value, and the text of each plain scalar that YAML 1.1 made a boolean or a
/// number (`yes`, `0644`), by path, so a string field given one can take the text instead (as
/// podshim always did) with a warning that kubectl would refuse it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub value: Value,
    pub plain: HashMap<Vec<Seg>, String>,
}

/// The documents of a manifest, numbered from 1 in file order (`Null` for a document with
/// nothing in it), or the reason one could not be read.
pub fn documents(text: &str) -> Vec<(usize, Result<Document, YamlError>)> {
    let mut out = Vec::new();
    for chunk in split(text) {
        for result in parse_chunk(&chunk) {
            out.push((out.len() + 1, result));
        }
    }
    out
}

/// A piece of the file between separators, and the file line it starts at.
pub(crate) struct Chunk<'a> {
    first_line: usize,
    pub(crate) text: &'a str,
}

/// apimachinery's `YAMLReader`: a line that is `---` followed by nothing but white space ends a
/// document and belongs to none. A line `--- <content>` also starts a new document here (kubectl
/// passes it on to go-yaml, which reads only the first document of a piece and drops the rest).
pub(crate) fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 1, 0);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        if let Some(rest) = line.strip_prefix("---") {
            let bare = rest.trim_end().is_empty();
            if bare || rest.starts_with([' ', '\t']) {
                if offset > start {
                    chunks.push(Chunk {
                        first_line: start_line,
                        text: &text[start..offset],
                    });
                }
                (start, start_line) = if bare {
                    (offset + line.len(), line_no + 1)
                } else {
                    (offset, line_no)
                };
            }
        }
        offset += line.len();
    }
    if text.len() > start {
        chunks.push(Chunk {
            first_line: start_line,
            text: &text[start..],
        });
    }
    chunks
}

/// The documents of one piece. A piece with only comments is one empty document (as kubectl
/// counts it); a syntax error ends the piece.
fn parse_chunk(chunk: &Chunk<'_>) -> Vec<Result<Document, YamlError>> {
    let mut edits = Edits::default();
    let mut tabs = 0;
    let mut text = chunk.text.to_string();
    loop {
        let mut builder = Builder::default();
        let mut docs = Vec::new();
        let failure = run_parser(&text, &mut builder, &mut docs);
        let Some(err) = failure else {
            if docs.is_empty() {
                docs.push(Ok(Document::default()));
            }
            return docs;
        };
        if let Failure::Scan(e) = &err {
            if e.info() == "':' must be followed by a valid YAML whitespace" && tabs < MAX_FIXES {
                if let Some(fixed) = tab_after_colon(&text, e.marker().index()) {
                    text = fixed;
                    tabs += 1;
                    continue;
                }
            }
            let indentation = e.info() == "invalid indentation"
                || e.info() == "invalid indentation in flow construct";
            let quoted = e.info() == "invalid indentation in quoted scalar";
            // Bounded in count and in the text parsed again (one space per pass).
            let affordable = edits.count() < MAX_FIXES * 10 && edits.count() * text.len() < 1 << 28;
            if indentation && affordable {
                if let Some(fixed) = indent_flow_line(&text, e.marker().index(), &mut edits) {
                    text = fixed;
                    continue;
                }
            }
            if quoted && affordable {
                if let Some(fixed) = indent_quoted_lines(&text, e.marker().index(), &mut edits) {
                    text = fixed;
                    continue;
                }
            }
            if e.info().ends_with("found unknown escape character") && edits.count() < MAX_FIXES {
                if let Some(fixed) = fix_single_quote_escapes(&text, e.marker().index(), &mut edits)
                {
                    text = fixed;
                    continue;
                }
            }
        }
        docs.push(Err(err.into_error(chunk, &edits)));
        return docs;
    }
}

/// What stopped the parse of a piece: the parser's error or one of the builder's.
enum Failure {
    Scan(ScanError),
    Build(Marker, String),
}

impl Failure {
    fn into_error(self, chunk: &Chunk<'_>, edits: &Edits) -> YamlError {
        let (marker, message) = match self {
            Failure::Scan(e) => {
                let info = e.info();
                let message = if info.ends_with("found unknown anchor") {
                    "unknown anchor".to_string()
                } else {
                    info.to_string()
                };
                (Some(*e.marker()), message)
            }
            Failure::Build(m, message) => (Some(m), message),
        };
        let (line, column) = match marker {
            Some(m) => {
                let (l, c) = edits.position(chunk.text, m.index());
                (Some(chunk.first_line + l - 1), Some(c))
            }
            None => (None, None),
        };
        YamlError {
            line,
            column,
            message,
        }
    }
}

/// Feeds the events of `text` to the builder, collecting finished documents.
fn run_parser(
    text: &str,
    builder: &mut Builder,
    docs: &mut Vec<Result<Document, YamlError>>,
) -> Option<Failure> {
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(e) => e,
            Err(e) => return Some(Failure::Scan(e)),
        };
        match builder.event(event, span.start) {
            Ok(Some(value)) => docs.push(Ok(Document {
                value,
                plain: std::mem::take(&mut builder.plain),
            })),
            Ok(None) => {}
            Err(e) => return Some(Failure::Build(e.at.unwrap_or(span.start), e.message)),
        }
    }
    None
}

/// A problem found while building: at the current event, or at an earlier mark (the mapping
/// holding a duplicate key, the `<<` of a bad merge).
struct BuildError {
    at: Option<Marker>,
    message: String,
}

impl From<String> for BuildError {
    fn from(message: String) -> Self {
        BuildError { at: None, message }
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        map: Map<String, Value>,
        /// Keys written in this mapping (merged keys may be overridden, these may not repeat).
        explicit: BTreeSet<String>,
        key: Option<Key>,
        anchor: usize,
        start: Marker,
    },
}

/// A mapping key waiting for its value.
enum Key {
    Name(String),
    /// `<<`: the value is merged into the mapping.
    Merge(Marker),
}

/// Builds JSON values from parser events.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Finished anchored nodes and how many nodes each holds.
    anchors: HashMap<usize, (Value, usize)>,
    /// Nodes written out in the document, and nodes its aliases added.
    direct: usize,
    aliased: usize,
    plain: HashMap<Vec<Seg>, String>,
}

impl Builder {
    /// Takes one event; returns a finished document's value.
    fn event(&mut self, event: Event<'_>, at: Marker) -> Result<Option<Value>, BuildError> {
        match event {
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.expects_key() {
                    return Err("invalid map key: a mapping key must be a scalar".into());
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err("recursion limit exceeded".into());
                }
                self.direct += 1;
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Map {
                        map: Map::new(),
                        explicit: BTreeSet::new(),
                        key: None,
                        anchor,
                        start: at,
                    },
                    _ => Frame::Seq {
                        items: Vec::new(),
                        anchor,
                    },
                });
                Ok(None)
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
                    None => return Ok(None),
                };
                self.finish(value, anchor)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.direct += 1;
                if self.expects_key() {
                    let key = self.key(&text, style, tag.as_deref(), at)?;
                    if anchor != 0 {
                        if let Key::Name(k) = &key {
                            self.anchors.insert(anchor, (Value::String(k.clone()), 1));
                        }
                    }
                    self.set_key(key);
                    return Ok(None);
                }
                let value = scalar_value(&text, style, tag.as_deref())
                    .map_err(|e| self.at_path(&e))?
                    .into_json()
                    .map_err(|which| self.at_path(&format!("unsupported value: {which}")))?;
                if style == ScalarStyle::Plain
                    && tag.is_none()
                    && (value.is_number() || value.is_boolean())
                {
                    self.plain.insert(self.value_path(), text.to_string());
                }
                self.finish(value, anchor)
            }
            Event::Alias(id) => {
                let Some((value, size)) = self.anchors.get(&id).cloned() else {
                    // The parser knows the anchor, so it is one still being built: the node
                    // would contain itself.
                    return Err("recursion limit exceeded".into());
                };
                self.aliased += size;
                if self.aliased > FREE_ALIAS_NODES && self.aliased > MAX_ALIAS_FACTOR * self.direct
                {
                    return Err("repetition limit exceeded".into());
                }
                if self.expects_key() {
                    let key = match value {
                        Value::String(s) => s,
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => return Err("invalid map key: a mapping key must be a scalar".into()),
                    };
                    self.set_key(Key::Name(key));
                    return Ok(None);
                }
                self.finish(value, 0)
            }
            Event::DocumentStart(_) => {
                self.anchors.clear();
                self.plain.clear();
                (self.direct, self.aliased) = (0, 0);
                Ok(None)
            }
            Event::DocumentEnd | Event::StreamStart | Event::StreamEnd | Event::Nothing => Ok(None),
        }
    }

    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    fn set_key(&mut self, k: Key) {
        if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
            *key = Some(k);
        }
    }

    /// A scalar in key position as a JSON object key.
    fn key(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        at: Marker,
    ) -> Result<Key, BuildError> {
        let merge_tag = tag.is_some_and(|t| t.handle == CORE_TAG && t.suffix == "merge");
        if text == "<<" && ((style == ScalarStyle::Plain && tag.is_none()) || merge_tag) {
            return Ok(Key::Merge(at));
        }
        let resolved = scalar_value(text, style, tag).map_err(|e| self.at_path(&e))?;
        scalar::key_string(&resolved).map(Key::Name).ok_or_else(|| {
            self.at_path("a null mapping key cannot be a JSON object key")
                .into()
        })
    }

    /// Records an anchored node and hands a finished node to its parent.
    fn finish(&mut self, value: Value, anchor: usize) -> Result<Option<Value>, BuildError> {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (value.clone(), node_count(&value)));
        }
        let path = self.path();
        match self.stack.last_mut() {
            None => Ok(Some(value)),
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                Ok(None)
            }
            Some(Frame::Map {
                map,
                explicit,
                key,
                start,
                ..
            }) => match key.take() {
                Some(Key::Name(k)) => {
                    if !explicit.insert(k.clone()) {
                        return Err(BuildError {
                            at: Some(*start),
                            message: prefixed(&path, &format!("duplicate entry with key {k:?}")),
                        });
                    }
                    map.insert(k, value);
                    Ok(None)
                }
                Some(Key::Merge(m)) => {
                    merge(map, value).map_err(|e| BuildError {
                        at: Some(m),
                        message: prefixed(&path, e),
                    })?;
                    Ok(None)
                }
                None => Ok(None),
            },
        }
    }

    /// The path of the innermost collection, as `spec.containers[0]`.
    fn path(&self) -> String {
        let mut out = String::new();
        let n = self.stack.len();
        for (i, frame) in self.stack.iter().enumerate() {
            if i + 1 == n {
                break;
            }
            match frame {
                Frame::Seq { items, .. } => out.push_str(&format!("[{}]", items.len())),
                Frame::Map { key, .. } => {
                    let name = match key {
                        Some(Key::Name(k)) => k.as_str(),
                        _ => "<<",
                    };
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
            }
        }
        out
    }

    /// The path of the node being read.
    fn value_path(&self) -> Vec<Seg> {
        self.stack
            .iter()
            .map(|frame| match frame {
                Frame::Seq { items, .. } => Seg::Index(items.len()),
                Frame::Map { key, .. } => Seg::Key(match key {
                    Some(Key::Name(k)) => k.clone(),
                    _ => "<<".into(),
                }),
            })
            .collect()
    }

    /// `message` prefixed with the path of the node being read.
    fn at_path(&self, message: &str) -> String {
        let mut path = self.path();
        if let Some(Frame::Map {
            key: Some(Key::Name(k)),
            ..
        }) = self.stack.last()
        {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
        } else if let Some(Frame::Seq { items, .. }) = self.stack.last() {
            path.push_str(&format!("[{}]", items.len()));
        }
        prefixed(&path, message)
    }
}

fn prefixed(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

/// go-yaml v2's merge: a mapping's entries, or each mapping of a sequence with the earlier ones
/// winning, are written into `map` over what it holds (keys after the `<<` override them).
fn merge(map: &mut Map<String, Value>, value: Value) -> Result<(), &'static str> {
    const WRONG: &str = "map merge requires map or sequence of maps as the value";
    match value {
        Value::Object(m) => map.extend(m),
        Value::Array(items) => {
            if !items.iter().all(Value::is_object) {
                return Err(WRONG);
            }
            for item in items.into_iter().rev() {
                if let Value::Object(m) = item {
                    map.extend(m);
                }
            }
        }
        _ => return Err(WRONG),
    }
    Ok(())
}

/// A scalar's value: plain ones resolved as go-yaml v2 does, quoted and block ones strings, tagged
/// ones as their tag says.
fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Scalar, String> {
    match tag {
        Some(t) if t.handle == CORE_TAG => resolve_tagged(text, &t.suffix),
        // The non-specific `!` and local or unknown tags leave the text a string.
        Some(_) => Ok(Scalar::Json(Value::String(text.to_string()))),
        None if style == ScalarStyle::Plain => Ok(resolve_plain(text)),
        None => Ok(Scalar::Json(Value::String(text.to_string()))),
    }
}

fn node_count(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(node_count).sum::<usize>(),
        _ => 1,
    }
}
