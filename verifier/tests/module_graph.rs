//! The verifier's top-level modules import one way: plan → run → measurements → checks →
//! verdict → reports, with no cycle. Read from the `crate::` paths of `src/` (test modules left
//! out), so an import that closes a cycle fails here with the edges that form it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module → the modules it imports, with one `file:line` per edge.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut mods = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() || (name != "lib" && name != "main") {
            mods.insert(name);
        }
    }
    let mut all = Vec::new();
    files(src, &mut all);
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in all {
        let rel = f.strip_prefix(src).unwrap();
        let me = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if !mods.contains(&me) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let body = text.split("#[cfg(test)]").next().unwrap_or("");
        // `crate::a::..` and the heads of `crate::{a, b::..}` groups.
        for (ln, line) in body.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                let heads: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or("");
                    inner
                        .split(',')
                        .map(|s| s.trim().split("::").next().unwrap_or("").to_owned())
                        .collect()
                } else {
                    vec![
                        rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or("")
                            .to_owned(),
                    ]
                };
                for t in heads {
                    if mods.contains(&t) && t != me {
                        g.entry(me.clone())
                            .or_default()
                            .entry(t)
                            .or_insert_with(|| format!("{}:{}", rel.display(), ln + 1));
                    }
                }
            }
        }
    }
    g
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    // Depth-first search for a back edge; the path to it is the cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for (t, at) in g.get(n).into_iter().flatten() {
            match state.get(t.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == t).unwrap_or(0);
                    let mut c: Vec<String> = stack[from..].to_vec();
                    c.push(format!("{t} (via {at})"));
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(t, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(n, &g, &mut state, &mut Vec::new())
        {
            panic!("import cycle between top-level modules: {}", c.join(" -> "));
        }
    }
    // The test can fail: the plan sits above every feature, so no feature may import it.
    assert!(g.get("plan").is_some_and(|e| e.contains_key("load")));
    assert!(!g.get("load").is_some_and(|e| e.contains_key("plan")));
}
