//! The container images the testcontainers provider uses, read from `platform/images.conf`, the
//! one table both languages and the platform scripts share. Each image is named by a variable
//! (`KIT_IMAGE_POSTGRES`, ...); its default is the official image, or the local build for the
//! kit's own programs, which have none. `make` exports the locally built stand-ins instead.

use std::sync::OnceLock;

/// The table as the build found it; a test below checks every row parses.
const IMAGES_CONF: &str = include_str!("../../../platform/images.conf");

/// One row: the variable that names the image and its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    pub var: String,
    pub default: String,
}

/// Rows of an images.conf text: `name official|- local`, `#` comments. A malformed row is an
/// error naming its line.
pub fn parse(text: &str) -> Result<Vec<ImageRow>, String> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, official, local] = f[..] else {
            return Err(format!(
                "platform/images.conf:{}: expected `name official-image|- local-tag`, found {} fields",
                i + 1,
                f.len()
            ));
        };
        rows.push(ImageRow {
            var: format!("KIT_IMAGE_{}", name.to_uppercase()),
            default: if official == "-" { local } else { official }.to_owned(),
        });
    }
    Ok(rows)
}

/// The built-in table. The file is part of the source tree, so a malformed row fails the unit
/// test below and never reaches a user; should it anyway, the table is empty and every image
/// lookup says the variable is unknown.
pub fn table() -> &'static [ImageRow] {
    static ROWS: OnceLock<Vec<ImageRow>> = OnceLock::new();
    ROWS.get_or_init(|| parse(IMAGES_CONF).unwrap_or_default())
}

/// The image for a dependency's variable (e.g. `KIT_IMAGE_POSTGRES`): the variable's value, or the
/// default. `None` for a variable the kit does not know.
pub fn image(var: &str) -> Option<String> {
    let row = table().iter().find(|r| r.var == var)?;
    Some(std::env::var(var).unwrap_or_else(|_| row.default.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_names_every_dependency() {
        let rows = parse(IMAGES_CONF).expect("platform/images.conf parses");
        for var in [
            "KIT_IMAGE_POSTGRES",
            "KIT_IMAGE_REDIS",
            "KIT_IMAGE_NATS",
            "KIT_IMAGE_TOXIPROXY",
            "KIT_IMAGE_PAYMENTSIM",
            "KIT_IMAGE_SERVICE",
        ] {
            assert!(rows.iter().any(|r| r.var == var), "{var} missing");
        }
        let pg = rows.iter().find(|r| r.var == "KIT_IMAGE_POSTGRES").unwrap();
        assert!(
            pg.default.starts_with("docker.io/library/postgres:"),
            "{pg:?}"
        );
        let svc = rows.iter().find(|r| r.var == "KIT_IMAGE_SERVICE").unwrap();
        assert!(svc.default.starts_with("kit-local/"), "{svc:?}");
    }

    #[test]
    fn a_malformed_row_names_its_line() {
        let e = parse("# c\npostgres a b\nredis only-two\n").unwrap_err();
        assert!(e.contains(":3:") && e.contains("2 fields"), "{e}");
    }
}
