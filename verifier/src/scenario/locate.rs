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

struct Walk<'p>(&'p [Seg]);

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
