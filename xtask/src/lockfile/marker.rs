//! PEP 508 environment markers, evaluated for Linux/CPython 3.11 on one architecture (pure):
//! the variables and operators a lock uses, with `and`, `or` and parentheses.

// ---------------------------------------------------------------------------------------------

fn env_value<'m>(var: &str, machine: &'m str) -> Option<&'m str> {
    Some(match var {
        "sys_platform" => "linux",
        "platform_system" => "Linux",
        "os_name" => "posix",
        "platform_machine" => machine,
        "python_version" => "3.11",
        "python_full_version" => "3.11.2",
        "implementation_name" => "cpython",
        "platform_python_implementation" => "CPython",
        "extra" => "",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Op(String),
    LParen,
    RParen,
}

fn tokens(m: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = m.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = cs[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or("unterminated string")?;
            out.push(Tok::Str(cs[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if "<>=!~".contains(c) {
            let mut op = String::from(c);
            while i + op.len() < cs.len() && "=~".contains(cs[i + op.len()]) {
                op.push(cs[i + op.len()]);
            }
            i += op.len();
            out.push(Tok::Op(op));
        } else {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_' || cs[i] == '.') {
                i += 1;
            }
            if start == i {
                return Err(format!("unexpected {c:?}"));
            }
            let w: String = cs[start..i].iter().collect();
            match w.as_str() {
                "in" | "not" if !matches!(out.last(), Some(Tok::Op(_))) => {
                    if w == "in" && matches!(out.last(), Some(Tok::Op(o)) if o == "not") {
                        out.pop();
                        out.push(Tok::Op("not in".into()));
                    } else {
                        out.push(Tok::Op(w));
                    }
                }
                _ => out.push(Tok::Ident(w)),
            }
        }
    }
    Ok(out)
}

fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| -> Vec<u64> {
        s.split('.')
            .map(|p| {
                p.chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    };
    let (mut x, mut y) = (parse(a), parse(b));
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    x.cmp(&y)
}

fn compare(lhs: &str, op: &str, rhs: &str, versions: bool) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    Ok(match op {
        "==" | "===" => {
            if versions && rhs.ends_with(".*") {
                let p = rhs.trim_end_matches(".*");
                lhs == p || lhs.starts_with(&format!("{p}."))
            } else if versions {
                version_cmp(lhs, rhs) == Equal
            } else {
                lhs == rhs
            }
        }
        "!=" => !compare(lhs, "==", rhs, versions)?,
        "in" => rhs.contains(lhs),
        "not in" => !rhs.contains(lhs),
        "<" | "<=" | ">" | ">=" | "~=" if versions => {
            let o = version_cmp(lhs, rhs);
            match op {
                "<" => o == Less,
                "<=" => o != Greater,
                ">" => o == Greater,
                ">=" => o != Less,
                _ => o != Less && version_cmp(lhs, &format!("{rhs}.99999")) == Less,
            }
        }
        _ => return Err(format!("operator {op} on a string")),
    })
}

struct Parser<'t> {
    t: &'t [Tok],
    i: usize,
    machine: &'t str,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<bool, String> {
        let mut v = self.and()?;
        while matches!(self.t.get(self.i), Some(Tok::Ident(w)) if w == "or") {
            self.i += 1;
            let r = self.and()?;
            v = v || r;
        }
        Ok(v)
    }
    fn and(&mut self) -> Result<bool, String> {
        let mut v = self.atom()?;
        while matches!(self.t.get(self.i), Some(Tok::Ident(w)) if w == "and") {
            self.i += 1;
            let r = self.atom()?;
            v = v && r;
        }
        Ok(v)
    }
    fn value(&mut self) -> Result<(String, bool), String> {
        match self.t.get(self.i).cloned() {
            Some(Tok::Str(s)) => {
                self.i += 1;
                Ok((s, false))
            }
            Some(Tok::Ident(v)) => {
                self.i += 1;
                let val =
                    env_value(&v, self.machine).ok_or(format!("unknown marker variable {v}"))?;
                Ok((val.to_string(), v.contains("version")))
            }
            t => Err(format!("expected a value, got {t:?}")),
        }
    }
    fn atom(&mut self) -> Result<bool, String> {
        if self.t.get(self.i) == Some(&Tok::LParen) {
            self.i += 1;
            let v = self.or()?;
            if self.t.get(self.i) != Some(&Tok::RParen) {
                return Err("missing )".into());
            }
            self.i += 1;
            return Ok(v);
        }
        let (l, lv) = self.value()?;
        let op = match self.t.get(self.i).cloned() {
            Some(Tok::Op(o)) => o,
            t => return Err(format!("expected an operator, got {t:?}")),
        };
        self.i += 1;
        let (r, rv) = self.value()?;
        compare(&l, &op, &r, lv || rv)
    }
}

/// Does a PEP 508 marker hold on Linux/CPython 3.11 with `platform_machine` = `machine`?
pub fn marker_holds(marker: &str, machine: &str) -> Result<bool, String> {
    let t = tokens(marker)?;
    let mut p = Parser {
        t: &t,
        i: 0,
        machine,
    };
    let v = p.or()?;
    if p.i != t.len() {
        return Err(format!("unexpected {:?}", t[p.i]));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_evaluate_per_arch() {
        let m = "platform_machine == 'x86_64' and sys_platform == 'linux'";
        assert_eq!(marker_holds(m, "x86_64"), Ok(true));
        assert_eq!(marker_holds(m, "aarch64"), Ok(false));
        assert_eq!(marker_holds("sys_platform == 'win32'", "x86_64"), Ok(false));
        assert_eq!(
            marker_holds("python_full_version >= '3.12'", "x86_64"),
            Ok(false)
        );
        assert_eq!(
            marker_holds("python_full_version < '3.12'", "aarch64"),
            Ok(true)
        );
        assert_eq!(marker_holds("python_version >= '3.9'", "aarch64"), Ok(true));
        assert_eq!(
            marker_holds("(platform_machine == 'aarch64' or platform_machine == 'arm64') and python_version < '3.13'", "aarch64"),
            Ok(true)
        );
        assert_eq!(
            marker_holds("platform_machine != 'aarch64'", "aarch64"),
            Ok(false)
        );
        assert_eq!(marker_holds("'linux' in sys_platform", "aarch64"), Ok(true));
        assert!(marker_holds("frobnicate == '1'", "aarch64").is_err());
    }
}
