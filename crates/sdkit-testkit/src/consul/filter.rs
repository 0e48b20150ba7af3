//! The `filter` language of Consul (a go-bexpr subset) and Go durations.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: Op,
        value: String,
    },
    Empty {
        selector: Vec<String>,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Contains,
    NotContains,
}

impl Expr {
    pub(crate) fn eval(&self, entry: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(entry) && b.eval(entry),
            Expr::Or(a, b) => a.eval(entry) || b.eval(entry),
            Expr::Not(a) => !a.eval(entry),
            Expr::Empty { selector, negate } => {
                let empty = match lookup(entry, selector) {
                    None | Some(Value::Null) => true,
                    Some(Value::Array(a)) => a.is_empty(),
                    Some(Value::Object(o)) => o.is_empty(),
                    Some(Value::String(s)) => s.is_empty(),
                    Some(_) => false,
                };
                empty != *negate
            }
            Expr::Match {
                selector,
                op,
                value,
            } => {
                let target = lookup(entry, selector);
                let contains = || match target {
                    Some(Value::Array(items)) => items.iter().any(|i| scalar_eq(i, value)),
                    Some(Value::Object(map)) => map.contains_key(value),
                    Some(Value::String(s)) => s.contains(value.as_str()),
                    _ => false,
                };
                match op {
                    Op::Eq => target.is_some_and(|t| scalar_eq(t, value)),
                    Op::Ne => !target.is_some_and(|t| scalar_eq(t, value)),
                    Op::Contains => contains(),
                    Op::NotContains => !contains(),
                }
            }
        }
    }
}

pub(crate) fn scalar_eq(v: &Value, s: &str) -> bool {
    match v {
        Value::String(x) => x == s,
        Value::Number(n) => n.to_string() == s,
        Value::Bool(b) => b.to_string() == s,
        _ => false,
    }
}

pub(crate) fn lookup<'a>(entry: &'a Value, selector: &[String]) -> Option<&'a Value> {
    selector
        .iter()
        .try_fold(entry, |v, key| v.get(key.as_str()))
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    EqEq,
    NotEq,
}

pub(crate) fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::EqEq);
                i += 2
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::NotEq);
                i += 2
            }
            '"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(e @ ('"' | '\\')) => value.push(*e),
                                Some('n') => value.push('\n'),
                                Some('t') => value.push('\t'),
                                _ => return Err("invalid escape in string".into()),
                            }
                            i += 2;
                        }
                        Some(ch) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(value));
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&ch| ch == '`')
                    .ok_or("unterminated raw string")?;
                out.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '/' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-' | '/'))
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

pub(crate) struct Parser {
    pub(crate) toks: Vec<Tok>,
    pub(crate) pos: usize,
}

pub(crate) fn parse_filter(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
    };
    let expr = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected token {:?}", p.toks[p.pos]));
    }
    Ok(expr)
}

impl Parser {
    pub(crate) fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w == kw)
    }
    /// Consumes keyword `kw` if it comes next.
    pub(crate) fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.peek_kw(kw);
        if found {
            self.pos += 1;
        }
        found
    }
    pub(crate) fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    pub(crate) fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_kw("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    pub(crate) fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat_kw("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }
    pub(crate) fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_kw("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.toks.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                return Err("missing closing parenthesis".into());
            }
            return Ok(e);
        }
        self.match_expr()
    }
    pub(crate) fn selector(word: &str) -> Result<Vec<String>, String> {
        let parts: Vec<String> = word.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!("invalid selector {word:?}"));
        }
        Ok(parts)
    }
    pub(crate) fn match_expr(&mut self) -> Result<Expr, String> {
        match self.next() {
            // value in Selector / value not in Selector
            Some(Tok::Str(value)) => {
                let negate = self.eat_kw("not");
                if !self.eat_kw("in") {
                    return Err("expected `in` after a value".into());
                }
                let Some(Tok::Ident(sel)) = self.next() else {
                    return Err("expected a selector after `in`".into());
                };
                Ok(Expr::Match {
                    selector: Self::selector(&sel)?,
                    op: if negate {
                        Op::NotContains
                    } else {
                        Op::Contains
                    },
                    value,
                })
            }
            Some(Tok::Ident(sel)) => {
                let selector = Self::selector(&sel)?;
                match self.next() {
                    Some(Tok::EqEq) => Ok(Expr::Match {
                        selector,
                        op: Op::Eq,
                        value: self.value()?,
                    }),
                    Some(Tok::NotEq) => Ok(Expr::Match {
                        selector,
                        op: Op::Ne,
                        value: self.value()?,
                    }),
                    Some(Tok::Ident(w)) if w == "contains" => Ok(Expr::Match {
                        selector,
                        op: Op::Contains,
                        value: self.value()?,
                    }),
                    Some(Tok::Ident(w)) if w == "not" => {
                        if !self.eat_kw("contains") {
                            return Err("expected `contains` after `not`".into());
                        }
                        Ok(Expr::Match {
                            selector,
                            op: Op::NotContains,
                            value: self.value()?,
                        })
                    }
                    Some(Tok::Ident(w)) if w == "is" => {
                        let negate = self.eat_kw("not");
                        if !self.eat_kw("empty") {
                            return Err("expected `empty`".into());
                        }
                        Ok(Expr::Empty { selector, negate })
                    }
                    other => Err(format!("expected an operator, found {other:?}")),
                }
            }
            other => Err(format!("expected a selector or value, found {other:?}")),
        }
    }
    pub(crate) fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Str(v)) | Some(Tok::Ident(v)) => Ok(v),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn go_durations() {
        assert_eq!(parse_go_duration("55s"), Some(Duration::from_secs(55)));
        assert_eq!(
            parse_go_duration("1500ms"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("s"), None);
    }

    #[test]
    pub(crate) fn filters() {
        let entry = json!({
            "Service": {"Tags": ["v1", "blue"], "Meta": {"zone": "a"}, "ID": "x\"y"},
            "Node": {"Datacenter": "dc1"}
        });
        let ok = |f: &str| parse_filter(f).unwrap().eval(&entry);
        assert!(ok(r#"Service.Tags contains "v1""#));
        assert!(ok(
            r#""blue" in Service.Tags and Service.Tags contains "v1""#
        ));
        assert!(!ok(
            r#"Service.Tags contains "v1" and Service.Tags contains "v2""#
        ));
        assert!(ok(
            r#"(Service.Tags contains "v2") or Service.Meta.zone == "a""#
        ));
        assert!(ok(r#"Service.ID == "x\"y""#));
        assert!(ok(r#"not Service.Meta.zone != `a`"#));
        assert!(ok("Service.Meta.missing is empty"));
        assert!(ok(r#""v3" not in Service.Tags"#));
        assert!(parse_filter("Service.Tags contains").is_err());
        assert!(parse_filter("(Service.Tags contains \"a\"").is_err());
        assert!(parse_filter("Service.Tags ~ \"a\"").is_err());
    }
}
