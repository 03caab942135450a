//! Finds the line and column of a field for errors found after parsing (a capture used
//! before it exists, a budget naming no step). It re-reads the YAML with a seed that walks
//! to the field and fails there, so the parser itself reports the position.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub fn display_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

const HERE: &str = "\u{0}here";

pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let de = serde_norway::Deserializer::from_str(text);
    match Walk(path).deserialize(de) {
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// The position of the second `key` in the mapping at `path`: where a duplicate key is, for the
/// error the parser reports at the mapping's start.
pub fn locate_duplicate(text: &str, path: &[Seg], key: &str) -> Option<(usize, usize)> {
    let de = serde_norway::Deserializer::from_str(text);
    match Walk(path).dup(key).deserialize(de) {
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

/// `a.b[0].c` back into segments (the form `display_path` writes).
pub fn parse_path(dotted: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in dotted.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Seg::Key(name.to_owned()));
        }
        while let Some((idx, after)) = rest.split_once(']') {
            if let Ok(i) = idx.parse() {
                out.push(Seg::Index(i));
            }
            rest = after.trim_start_matches('[');
        }
    }
    out
}

struct Walk<'p>(&'p [Seg]);

impl<'p> Walk<'p> {
    fn dup(self, key: &'p str) -> DupWalk<'p> {
        DupWalk { path: self.0, key }
    }
}

/// Walks to a mapping and fails at the second occurrence of `key` in it.
struct DupWalk<'p> {
    path: &'p [Seg],
    key: &'p str,
}

impl<'de> DeserializeSeed<'de> for DupWalk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupWalk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(k) = m.next_key::<String>()? {
            match self.path.first() {
                None if k == self.key && seen => {
                    return m.next_value_seed(Walk(&[]));
                }
                None if k == self.key => {
                    seen = true;
                    m.next_value::<IgnoredAny>()?;
                }
                Some(Seg::Key(want)) if *want == k => m.next_value_seed(DupWalk {
                    path: &self.path[1..],
                    key: self.key,
                })?,
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let found = if self.path.first() == Some(&Seg::Index(i)) {
                s.next_element_seed(DupWalk {
                    path: &self.path[1..],
                    key: self.key,
                })?
                .is_some()
            } else {
                s.next_element::<IgnoredAny>()?.is_some()
            };
            if !found {
                return Ok(());
            }
            i += 1;
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! here {
    ($($name:ident: $t:ty),*) => {$(
        fn $name<E: serde::de::Error>(self, _: $t) -> Result<(), E> {
            if self.0.is_empty() { Err(E::custom(HERE)) } else { Ok(()) }
        }
    )*};
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }
    here!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(HERE))
        } else {
            Ok(())
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        if self.0.is_empty() {
            return Err(serde::de::Error::custom(HERE));
        }
        while let Some(key) = m.next_key::<String>()? {
            if self.0[0] == Seg::Key(key) {
                m.next_value_seed(Walk(&self.0[1..]))?;
            } else {
                m.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        if self.0.is_empty() {
            return Err(serde::de::Error::custom(HERE));
        }
        let mut i = 0;
        loop {
            let found = if self.0[0] == Seg::Index(i) {
                s.next_element_seed(Walk(&self.0[1..]))?.is_some()
            } else {
                s.next_element::<IgnoredAny>()?.is_some()
            };
            if !found {
                return Ok(());
            }
            i += 1;
        }
    }
}
