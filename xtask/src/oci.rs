//! The OCI labels that say what an image is (`org.opencontainers.image.*` and the lock label)
//! and how `pull` and `doctor` show them: one line, pure, from `image inspect`'s label JSON.

use crate::policy;
use std::collections::BTreeMap;

/// The labels shown, with the word each is shown as.
pub const SHOWN: [(&str, &str); 6] = [
    ("org.opencontainers.image.version", "version"),
    ("org.opencontainers.image.revision", "revision"),
    ("org.opencontainers.image.created", "created"),
    ("org.opencontainers.image.source", "source"),
    ("org.opencontainers.image.licenses", "licenses"),
    (policy::LOCK_LABEL, "lock"),
];

/// `{{json .Config.Labels}}` → the labels (none for `null` or garbage).
pub fn parse(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str::<BTreeMap<String, String>>(json.trim()).unwrap_or_default()
}

/// "version 0.1.0 · revision 3f2a… · created … · source … · licenses … · lock 7e75…", the
/// labels that are there; hashes shortened to 12 characters.
pub fn describe(labels: &BTreeMap<String, String>) -> String {
    SHOWN
        .iter()
        .filter_map(|(key, word)| {
            let v = labels.get(*key)?.trim();
            if v.is_empty() {
                return None;
            }
            let hashy = v.len() >= 40 && v.chars().take(40).all(|c| c.is_ascii_hexdigit());
            let shown = if hashy {
                format!(
                    "{}{}",
                    &v[..12],
                    if v.ends_with("-dirty") { "-dirty" } else { "" }
                )
            } else {
                v.to_string()
            };
            Some(format!("{word} {shown}"))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_what_is_there_in_a_fixed_order() {
        let l = parse(
            r#"{"org.opencontainers.image.licenses":"Apache-2.0","org.opencontainers.image.version":"0.1.0",
                "org.opencontainers.image.revision":"78d8d4c40af682f94aec7f006bbbced630cae05a-dirty",
                "dev.lexalign.lock-sha256":"7e756d8172c976d506bc8c57ede04b4b1d803e5229161a0f17efa364aae14112",
                "org.opencontainers.image.title":"lexalign-dev"}"#,
        );
        assert_eq!(
            describe(&l),
            "version 0.1.0 · revision 78d8d4c40af6-dirty · licenses Apache-2.0 · lock 7e756d8172c9"
        );
        assert_eq!(describe(&parse("null")), "");
        assert_eq!(describe(&parse("not json")), "");
    }
}
