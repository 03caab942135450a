//! HS256 bearer tokens the verifier mints for its own tenants, and the bad ones it must see
//! refused: a forged signature, an expired token, an unsigned (`alg: none`) token.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::scenario::{Template, TemplateContext};

/// `security.jwt`: the service's HS256 secret and the claims of the tokens minted with it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// The HMAC secret, usually `${env.ORDERS_JWT_SECRET}`.
    pub secret: Template,
    /// The claim that names the tenant; the verifier fills it with tenants of its own.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Further claims every minted token carries (e.g. `sub`, `iss`, `aud`).
    #[serde(default)]
    pub claims: BTreeMap<String, Value>,
}

fn default_tenant_claim() -> String {
    "tenant_id".into()
}

#[derive(Clone)]
pub struct Minter {
    key: ring::hmac::Key,
    tenant_claim: String,
    claims: BTreeMap<String, Value>,
}

impl Minter {
    pub fn new(spec: &JwtSpec, getenv: &dyn Fn(&str) -> Option<String>) -> Result<Minter, String> {
        let bound = spec
            .secret
            .bind_env(getenv)
            .map_err(|m| format!("security.jwt.secret: {m}"))?;
        let seq = std::sync::atomic::AtomicU64::new(0);
        let vars = std::collections::HashMap::new();
        let secret = bound.render(&TemplateContext {
            seq: &seq,
            vars: &vars,
        });
        if secret.is_empty() {
            return Err("security.jwt.secret: the secret is empty".into());
        }
        Ok(Minter {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
            tenant_claim: spec.tenant_claim.clone(),
            claims: spec.claims.clone(),
        })
    }

    fn mint(&self, tenant: &str, exp_offset: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!("verifier-security"));
        for (k, v) in &self.claims {
            claims.insert(k.clone(), v.clone());
        }
        claims.insert(self.tenant_claim.clone(), json!(tenant));
        claims.insert("iat".into(), json!(now.min(now + exp_offset - 60)));
        claims.insert("exp".into(), json!(now + exp_offset));
        sign(
            &self.key,
            &json!({"alg": "HS256", "typ": "JWT"}),
            &Value::Object(claims),
        )
    }

    /// Valid for an hour.
    pub fn valid(&self, tenant: &str) -> String {
        self.mint(tenant, 3600)
    }

    /// Correctly signed, expired an hour ago (well past any clock-skew leeway).
    pub fn expired(&self, tenant: &str) -> String {
        self.mint(tenant, -3600)
    }
}

fn sign(key: &ring::hmac::Key, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let tag = ring::hmac::sign(key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// The same header and claims, signed with a key that is not the service's.
pub fn forge_signature(token: &str) -> String {
    let input = token.rsplit_once('.').map(|(i, _)| i).unwrap_or(token);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"not-the-service-secret");
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

/// The same claims with `alg: none` and no signature.
pub fn alg_none(token: &str) -> String {
    let claims = token.split('.').nth(1).unwrap_or("");
    format!(
        "{}.{claims}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter() -> Minter {
        let spec = JwtSpec {
            secret: Template::parse("${env.S}").unwrap(),
            tenant_claim: "tenant_id".into(),
            claims: BTreeMap::from([("iss".to_owned(), json!("kit"))]),
        };
        Minter::new(&spec, &|k| (k == "S").then(|| "s3cret".to_owned())).unwrap()
    }

    fn claims(t: &str) -> Value {
        serde_json::from_slice(&B64.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn minted_tokens_verify_with_the_secret_and_bad_ones_do_not() {
        let m = minter();
        let t = m.valid("acme");
        let (input, sig) = t.rsplit_once('.').unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        ring::hmac::verify(&key, input.as_bytes(), &B64.decode(sig).unwrap()).unwrap();
        let c = claims(&t);
        assert_eq!(
            (c["tenant_id"].as_str(), c["iss"].as_str()),
            (Some("acme"), Some("kit"))
        );
        assert!(c["exp"].as_i64().unwrap() > c["iat"].as_i64().unwrap());

        let forged = forge_signature(&t);
        let (input, sig) = forged.rsplit_once('.').unwrap();
        assert!(ring::hmac::verify(&key, input.as_bytes(), &B64.decode(sig).unwrap()).is_err());
        assert_eq!(claims(&forged), c);

        let expired = m.expired("acme");
        let c = claims(&expired);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(c["exp"].as_i64().unwrap() < now - 3000, "{c}");
        let none = alg_none(&t);
        assert!(none.ends_with('.'));
        let header: Value =
            serde_json::from_slice(&B64.decode(none.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "none");
    }

    #[test]
    fn an_unset_secret_is_named() {
        let spec = JwtSpec {
            secret: Template::parse("${env.NOPE}").unwrap(),
            tenant_claim: "tenant_id".into(),
            claims: BTreeMap::new(),
        };
        let e = Minter::new(&spec, &|_| None).err().unwrap();
        assert!(
            e.contains("security.jwt.secret: environment variable `NOPE` is not set"),
            "{e}"
        );
    }
}
