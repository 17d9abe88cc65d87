//! AQL text to a value tree, by hand: a lexer and a recursive-descent parser
//! for `domain.find(<json>)` followed by `.include/.sort/.offset/.limit`.
//!
//! The JSON part keeps members in order and keeps duplicate keys, because AQL
//! gives them meaning: `"$or":[{"repo":"a","repo":"b"}]` is "repo a or b".
//! Every error names a line and column and what was expected.

use crate::Error;

/// A position in the query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

/// A JSON-like value with source positions.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `"…"`
    Str(String, Pos),
    /// A number, kept as written.
    Num(String, Pos),
    /// `true` / `false`
    Bool(bool, Pos),
    /// `null`
    Null(Pos),
    /// `{…}`, members in order, duplicates kept.
    Obj(Vec<(String, Pos, Value)>, Pos),
    /// `[…]`
    Arr(Vec<Value>, Pos),
}

impl Value {
    /// Where the value starts.
    pub fn pos(&self) -> Pos {
        match self {
            Value::Str(_, p)
            | Value::Num(_, p)
            | Value::Bool(_, p)
            | Value::Null(p)
            | Value::Obj(_, p)
            | Value::Arr(_, p) => *p,
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Str(..) => "a string",
            Value::Num(..) => "a number",
            Value::Bool(..) => "a boolean",
            Value::Null(_) => "null",
            Value::Obj(..) => "an object",
            Value::Arr(..) => "an array",
        }
    }
}

/// A modifier call after `find(...)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// `include`, `sort`, `offset` or `limit`.
    pub name: String,
    /// Where the name starts.
    pub pos: Pos,
    /// The arguments.
    pub args: Vec<Value>,
}

/// A parsed query, before interpretation.
#[derive(Clone, Debug, PartialEq)]
pub struct Raw {
    /// `items`, `builds`, …
    pub domain: String,
    /// Where the domain starts.
    pub domain_pos: Pos,
    /// The argument of `find`, if any.
    pub criteria: Option<Value>,
    /// Modifier calls in order.
    pub calls: Vec<Call>,
}

/// A syntax or meaning error at a position.
pub fn error_at(pos: Pos, msg: impl std::fmt::Display) -> Error {
    Error::Invalid {
        field: "aql",
        reason: format!("line {} column {}: {msg}", pos.line, pos.col),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Num(n) => format!("number {n}"),
            Tok::Punct(c) => format!("'{c}'"),
            Tok::End => "the end of the query".into(),
        }
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

impl Lexer<'_> {
    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    fn next_tok(&mut self) -> Result<(Tok, Pos), Error> {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.bump();
        }
        let start = self.pos;
        let Some(&c) = self.chars.peek() else {
            return Ok((Tok::End, start));
        };
        if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(&c) = self.chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                s.push(c);
                self.bump();
            }
            return Ok((Tok::Ident(s), start));
        }
        if c.is_ascii_digit() || c == '-' {
            let mut s = String::new();
            while let Some(&c) = self.chars.peek() {
                if !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')) {
                    break;
                }
                s.push(c);
                self.bump();
            }
            if s.parse::<f64>().is_err() {
                return Err(error_at(start, format!("'{s}' is not a number")));
            }
            return Ok((Tok::Num(s), start));
        }
        if c == '"' {
            self.bump();
            return self.string(start).map(|s| (Tok::Str(s), start));
        }
        if "(){}[]:,.".contains(c) {
            self.bump();
            return Ok((Tok::Punct(c), start));
        }
        Err(error_at(start, format!("unexpected character {c:?}")))
    }

    fn string(&mut self, start: Pos) -> Result<String, Error> {
        let mut s = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(error_at(start, "unterminated string")),
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some('"') => s.push('"'),
                    Some('\\') => s.push('\\'),
                    Some('/') => s.push('/'),
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('b') => s.push('\u{8}'),
                    Some('f') => s.push('\u{c}'),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| error_at(at, format!("bad escape \\u{hex}")))?;
                        s.push(c);
                    }
                    other => {
                        return Err(error_at(
                            at,
                            format!(
                                "bad escape \\{}",
                                other.map(String::from).unwrap_or_default()
                            ),
                        ));
                    }
                },
                Some(c) if c.is_control() && c != '\t' => {
                    return Err(error_at(at, "control character inside a string"));
                }
                Some(c) => s.push(c),
            }
        }
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    tok: Tok,
    pos: Pos,
    depth: u32,
}

/// Nesting beyond this is refused, so hostile input cannot overflow the stack.
const MAX_DEPTH: u32 = 64;

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Parser<'a>, Error> {
        let mut lex = Lexer {
            chars: text.chars().peekable(),
            pos: Pos { line: 1, col: 1 },
        };
        let (tok, pos) = lex.next_tok()?;
        Ok(Parser {
            lex,
            tok,
            pos,
            depth: 0,
        })
    }

    fn advance(&mut self) -> Result<(Tok, Pos), Error> {
        let (next, pos) = self.lex.next_tok()?;
        let prev = std::mem::replace(&mut self.tok, next);
        let prev_pos = std::mem::replace(&mut self.pos, pos);
        Ok((prev, prev_pos))
    }

    fn expect_punct(&mut self, c: char, context: &str) -> Result<Pos, Error> {
        if self.tok == Tok::Punct(c) {
            return Ok(self.advance()?.1);
        }
        Err(error_at(
            self.pos,
            format!("expected '{c}' {context}, found {}", self.tok.describe()),
        ))
    }

    fn ident(&mut self, context: &str) -> Result<(String, Pos), Error> {
        match self.advance()? {
            (Tok::Ident(s), p) => Ok((s, p)),
            (other, p) => Err(error_at(
                p,
                format!("expected {context}, found {}", other.describe()),
            )),
        }
    }

    fn value(&mut self) -> Result<Value, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error_at(
                self.pos,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let v = match self.advance()? {
            (Tok::Str(s), p) => Value::Str(s, p),
            (Tok::Num(n), p) => Value::Num(n, p),
            (Tok::Ident(i), p) if i == "true" => Value::Bool(true, p),
            (Tok::Ident(i), p) if i == "false" => Value::Bool(false, p),
            (Tok::Ident(i), p) if i == "null" => Value::Null(p),
            (Tok::Punct('{'), p) => {
                let mut members = Vec::new();
                if self.tok != Tok::Punct('}') {
                    loop {
                        let (key, kp) = match self.advance()? {
                            (Tok::Str(s), kp) => (s, kp),
                            (other, kp) => {
                                return Err(error_at(
                                    kp,
                                    format!("expected a quoted key, found {}", other.describe()),
                                ));
                            }
                        };
                        self.expect_punct(':', "after a key")?;
                        members.push((key, kp, self.value()?));
                        if self.tok == Tok::Punct(',') {
                            self.advance()?;
                            continue;
                        }
                        break;
                    }
                }
                self.expect_punct('}', "to close the object")?;
                Value::Obj(members, p)
            }
            (Tok::Punct('['), p) => {
                let mut items = Vec::new();
                if self.tok != Tok::Punct(']') {
                    loop {
                        items.push(self.value()?);
                        if self.tok == Tok::Punct(',') {
                            self.advance()?;
                            continue;
                        }
                        break;
                    }
                }
                self.expect_punct(']', "to close the array")?;
                Value::Arr(items, p)
            }
            (other, p) => {
                return Err(error_at(
                    p,
                    format!("expected a value, found {}", other.describe()),
                ));
            }
        };
        self.depth -= 1;
        Ok(v)
    }
}

/// Parses AQL text into its raw parts.
pub fn parse(text: &str) -> Result<Raw, Error> {
    let mut p = Parser::new(text)?;
    let (domain, domain_pos) = p.ident("a domain such as 'items' or 'builds'")?;
    p.expect_punct('.', "after the domain")?;
    let (find, fpos) = p.ident("'find'")?;
    if find != "find" {
        return Err(error_at(fpos, format!("expected 'find', found '{find}'")));
    }
    p.expect_punct('(', "after 'find'")?;
    let criteria = if p.tok == Tok::Punct(')') {
        None
    } else {
        Some(p.value()?)
    };
    p.expect_punct(')', "to close 'find('")?;
    let mut calls = Vec::new();
    while p.tok == Tok::Punct('.') {
        p.advance()?;
        let (name, pos) = p.ident("a modifier (include, sort, offset, limit)")?;
        p.expect_punct('(', &format!("after '{name}'"))?;
        let mut args = Vec::new();
        if p.tok != Tok::Punct(')') {
            loop {
                args.push(p.value()?);
                if p.tok == Tok::Punct(',') {
                    p.advance()?;
                    continue;
                }
                break;
            }
        }
        p.expect_punct(')', &format!("to close '{name}('"))?;
        calls.push(Call { name, pos, args });
    }
    if p.tok != Tok::End {
        return Err(error_at(
            p.pos,
            format!(
                "expected '.' or the end of the query, found {}",
                p.tok.describe()
            ),
        ));
    }
    Ok(Raw {
        domain,
        domain_pos,
        criteria,
        calls,
    })
}
