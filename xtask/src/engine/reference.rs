//! Image references (`[registry[:port]/]path[:tag][@digest]`, docker's grammar), checked before
//! any engine call so a typo is exit 2 with the rule, not an engine error.

/// Validate an image reference (`[registry[:port]/]path[:tag][@digest]`, docker's grammar).
pub fn validate_image_ref(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("empty image reference; use e.g. lexalign-dev:latest".into());
    }
    if reference.len() > 255 + 128 + 80 {
        return Err("image reference too long".into());
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(format!("digest `{d}` is not sha256:<64 hex digits>"));
        }
    }
    // A tag follows the last ':' after the last '/'.
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let valid = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            return Err(format!(
                "tag `{tag}` is invalid: use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-')"
            ));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            let port_ok =
                port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err(format!("registry `{first}` is invalid"));
            }
            parts.remove(0);
        }
    }
    for part in parts {
        if !path_component_ok(part) {
            return Err(format!(
                "`{part}` is not a valid repository name component: use lower-case letters, digits \
                 and single separators ('.', '_', '__', '-'), e.g. lexalign-dev:latest"
            ));
        }
    }
    Ok(())
}

fn path_component_ok(part: &str) -> bool {
    let b = part.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // separator: '.', '_', '__', or one or more '-'
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for ok in [
            "lexalign-dev:latest",
            "lexalign-dev",
            "lexalign/python:3.11-bookworm",
            "python:3.11-slim",
            "localhost:5000/a/b:c",
            "ghcr.io/org/img@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "a__b.c-d:T_1",
        ] {
            assert!(validate_image_ref(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Lexalign:latest",
            "lexalign dev",
            "lexalign:",
            "lexalign:-x",
            "lex..align",
            "-lex",
            "lex/",
            "img@sha256:xyz",
            "a:b:c",
        ] {
            assert!(validate_image_ref(bad).is_err(), "{bad}");
        }
    }
}
