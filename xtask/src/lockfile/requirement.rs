//! The part of PEP 508 that pin syncing needs: name, extras, specifier, marker, URL form.
//! Rewriting keeps the original spelling, extras and marker text byte for byte.

/// A parsed requirement string, as byte ranges of the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement<'a> {
    pub text: &'a str,
    /// The distribution name as written.
    pub name: &'a str,
    /// End of name + extras (`pkg[a,b]`), the part kept before the new `==VERSION`.
    pub head_end: usize,
    /// The version specifier as written (may be empty).
    pub spec: &'a str,
    /// Start of what follows the specifier (whitespace, `; marker`), kept as written.
    pub tail_start: usize,
    /// The marker expression, without the `;`.
    pub marker: Option<&'a str>,
    /// A direct reference (`name @ url`): never rewritten.
    pub is_url: bool,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Parse a requirement; `None` when it does not start with a valid name.
pub fn parse(text: &str) -> Option<Requirement<'_>> {
    let lead = text.len() - text.trim_start().len();
    let name_len = text[lead..]
        .find(|c: char| !is_name_char(c))
        .unwrap_or(text.len() - lead);
    let name = &text[lead..lead + name_len];
    if name.is_empty()
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let mut i = lead + name_len;
    let after_ws = i + (text[i..].len() - text[i..].trim_start().len());
    if text[after_ws..].starts_with('[') {
        let close = text[after_ws..].find(']')?;
        i = after_ws + close + 1;
    }
    let head_end = i;
    let rest = &text[i..];
    if rest.trim_start().starts_with('@') {
        return Some(Requirement {
            text,
            name,
            head_end,
            spec: "",
            tail_start: text.len(),
            marker: None,
            is_url: true,
        });
    }
    let (spec_region, marker) = match rest.find(';') {
        Some(j) => (&rest[..j], Some(rest[j + 1..].trim())),
        None => (rest, None),
    };
    let spec = spec_region.trim();
    let spec_start = i + (spec_region.len() - spec_region.trim_start().len());
    // What follows the specifier (whitespace, `; marker`) is kept as written.
    let tail_start = if spec.is_empty() {
        i
    } else {
        spec_start + spec.len()
    };
    Some(Requirement {
        text,
        name,
        head_end,
        spec,
        tail_start,
        marker: marker.filter(|m| !m.is_empty()),
        is_url: false,
    })
}

impl Requirement<'_> {
    /// The same requirement pinned to `==version` (spelling, extras and marker kept).
    pub fn pinned(&self, version: &str) -> String {
        format!(
            "{}=={version}{}",
            self.text[..self.head_end].trim_end(),
            &self.text[self.tail_start..]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_specifiers() {
        let r = parse("torch>=2.0,<3").unwrap();
        assert_eq!(r.name, "torch");
        assert_eq!(r.spec, ">=2.0,<3");
        assert_eq!(r.pinned("2.6.0"), "torch==2.6.0");
        assert_eq!(parse("torch").unwrap().pinned("2.6.0"), "torch==2.6.0");
        assert_eq!(
            parse("torch==2.6.0").unwrap().pinned("2.6.0"),
            "torch==2.6.0"
        );
    }

    #[test]
    fn extras_and_markers_kept() {
        let r = parse("Pkg_Name[a,b] >= 1 ; sys_platform == 'linux'").unwrap();
        assert_eq!(r.name, "Pkg_Name");
        assert_eq!(r.marker, Some("sys_platform == 'linux'"));
        assert_eq!(
            r.pinned("1.2"),
            "Pkg_Name[a,b]==1.2 ; sys_platform == 'linux'"
        );
        let r = parse("bitsandbytes; sys_platform == 'linux'").unwrap();
        assert_eq!(
            r.pinned("0.45.5"),
            "bitsandbytes==0.45.5; sys_platform == 'linux'"
        );
        let r = parse("pkg [x]").unwrap();
        assert_eq!(r.pinned("1"), "pkg [x]==1");
    }

    #[test]
    fn urls_and_garbage() {
        assert!(parse("pkg @ https://example.org/p.whl").unwrap().is_url);
        assert!(parse("pkg@file:///tmp/x").unwrap().is_url);
        assert!(parse("").is_none());
        assert!(parse("-e .").is_none());
        assert!(parse("./local/path").is_none());
    }

    #[test]
    fn versions_are_opaque() {
        for v in ["2.6.0+cu124", "1.0rc1", "1.0.post2", "2.0.dev3"] {
            assert_eq!(parse("x>=1").unwrap().pinned(v), format!("x=={v}"));
        }
    }
}
