//! Distribution rules: which edge sites a distribution goes to.
//!
//! A rule is three wildcard fields, `site_name`, `city_name` and
//! `country_codes`. `*` matches any run of characters (also none) and `?`
//! matches exactly one character (a `char`, not a byte, so `M?nchen` matches
//! `München`). There is no escape: `*` and `?` are always wildcards.
//!
//! Semantics, checked against a regex reference by property tests:
//! - An absent field, an empty string, or an empty `country_codes` list means `*`.
//! - A site matches a rule when the site name matches, the city matches, and
//!   at least one country pattern matches the site's country code.
//! - A site is selected when any rule matches it, so `[{}]` selects every site
//!   and `[]` selects none.
//! - Matching is case-insensitive: both sides are folded character by
//!   character with Unicode lower-casing (`fold_char`). Site names and cities
//!   are typed by people (`new york` vs `New York`) and ISO country codes are
//!   case-insensitive by definition, so a case-sensitive match would only
//!   produce empty selections that look like outages.
//!
//! Each pattern is compiled once into the cheapest matcher that is exact for
//! it (any, exact, prefix, suffix, or a general `*`/`?` matcher).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::site::EdgeSite;

/// One distribution rule as a user wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionRule {
    /// Pattern on the site name; `None` means any.
    pub site_name: Option<String>,
    /// Pattern on the city name; `None` means any.
    pub city_name: Option<String>,
    /// Patterns on the ISO country code; empty means any.
    pub country_codes: Vec<String>,
}

/// Folds one character for case-insensitive matching.
///
/// A character whose lower case is several characters (such as `İ`) is kept
/// as it is, so folding never changes a string's length in characters and
/// `?` keeps meaning "one character".
#[inline]
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Folds a whole string with `fold_char`.
pub fn fold(s: &str) -> String {
    s.chars().map(fold_char).collect()
}

/// A compiled wildcard pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    raw: String,
    matcher: Matcher,
    fold: bool,
    /// The literal of an exact, prefix or suffix matcher when it is ASCII:
    /// then ASCII text compares byte by byte, with no UTF-8 decoding.
    ascii: Option<Box<[u8]>>,
}

#[derive(Clone, Debug)]
enum Matcher {
    Any,
    Exact(Vec<char>),
    Prefix(Vec<char>),
    Suffix(Vec<char>),
    General(Vec<Token>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Lit(char),
    One,
    Star,
}

impl Pattern {
    /// Compiles `raw` for case-insensitive matching; an empty pattern means `*`.
    pub fn new(raw: &str) -> Pattern {
        Pattern::compile(raw, true)
    }

    /// Compiles `raw` for exact-case matching (AQL's `$match` on paths);
    /// here the empty pattern matches only the empty string.
    pub fn case_sensitive(raw: &str) -> Pattern {
        if raw.is_empty() {
            return Pattern {
                raw: String::new(),
                matcher: Matcher::Exact(Vec::new()),
                fold: false,
                ascii: Some(Box::default()),
            };
        }
        Pattern::compile(raw, false)
    }

    fn compile(raw: &str, fold: bool) -> Pattern {
        let f = |c: char| if fold { fold_char(c) } else { c };
        let mut tokens: Vec<Token> = Vec::with_capacity(raw.len());
        for c in raw.chars() {
            let tok = match c {
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Lit(f(c)),
            };
            // `**` is the same as `*`; collapsing keeps the general matcher linear in common cases.
            if !(tok == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(tok);
            }
        }
        let lits = |toks: &[Token]| -> Option<Vec<char>> {
            toks.iter()
                .map(|t| match t {
                    Token::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        let matcher = match tokens.as_slice() {
            [] | [Token::Star] => Matcher::Any,
            [Token::Star, rest @ ..] if lits(rest).is_some() => {
                Matcher::Suffix(lits(rest).unwrap_or_default())
            }
            [rest @ .., Token::Star] if lits(rest).is_some() => {
                Matcher::Prefix(lits(rest).unwrap_or_default())
            }
            all => match lits(all) {
                Some(exact) => Matcher::Exact(exact),
                None => Matcher::General(tokens),
            },
        };
        let ascii = match &matcher {
            Matcher::Exact(lit) | Matcher::Prefix(lit) | Matcher::Suffix(lit)
                if lit.iter().all(char::is_ascii) =>
            {
                Some(lit.iter().map(|&c| c as u8).collect())
            }
            _ => None,
        };
        Pattern {
            raw: raw.to_string(),
            matcher,
            fold,
            ascii,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether `text` matches, case-insensitively.
    pub fn matches(&self, text: &str) -> bool {
        let fold = self.fold;
        if let Some(hit) = self
            .ascii
            .as_deref()
            .and_then(|lit| self.match_ascii(lit, text.as_bytes()))
        {
            return hit;
        }
        match &self.matcher {
            Matcher::Any => true,
            Matcher::Exact(lit) => eq_folded(text.chars(), lit.iter().copied(), true, fold),
            Matcher::Prefix(lit) => eq_folded(text.chars(), lit.iter().copied(), false, fold),
            Matcher::Suffix(lit) => {
                eq_folded(text.chars().rev(), lit.iter().rev().copied(), false, fold)
            }
            Matcher::General(tokens) => match_general(tokens, text, fold),
        }
    }

    /// Byte comparison of an ASCII literal, or `None` when the part of `text`
    /// it would compare with is not ASCII. Only then may a longer non-ASCII
    /// character fold onto an ASCII one (the Kelvin sign folds to `k`), so
    /// the char path decides.
    #[inline]
    fn match_ascii(&self, lit: &[u8], text: &[u8]) -> Option<bool> {
        let eq = |a: &[u8]| {
            if self.fold {
                a.eq_ignore_ascii_case(lit)
            } else {
                a == lit
            }
        };
        let n = lit.len();
        match self.matcher {
            Matcher::Exact(_) => text.is_ascii().then(|| text.len() == n && eq(text)),
            Matcher::Prefix(_) => match text.get(..n) {
                Some(head) if head.is_ascii() => Some(eq(head)),
                Some(_) => None,
                None if text.is_ascii() => Some(false),
                None => None,
            },
            Matcher::Suffix(_) => match text.len().checked_sub(n).map(|at| &text[at..]) {
                Some(tail) if tail.is_ascii() => Some(eq(tail)),
                Some(_) => None,
                None if text.is_ascii() => Some(false),
                None => None,
            },
            _ => None,
        }
    }
}

impl Pattern {
    /// Whether a name from a [`SiteIndex`] matches: folded ASCII names are
    /// compared as bytes with no further folding or decoding.
    #[inline]
    fn matches_indexed(&self, name: IndexedName<'_>) -> bool {
        // Rule patterns always fold (`Pattern::new`): folded names suit them.
        debug_assert!(self.fold, "site patterns are case-insensitive");
        let bytes = match name {
            IndexedName::Folded(b) => b,
            IndexedName::Text(t) => return self.matches(t),
        };
        // The pattern's literals are folded too, so plain byte equality is exact.
        match (&self.matcher, self.ascii.as_deref()) {
            (Matcher::Any, _) => true,
            (Matcher::Exact(_), Some(lit)) => bytes == lit,
            (Matcher::Prefix(_), Some(lit)) => bytes.starts_with(lit),
            (Matcher::Suffix(_), Some(lit)) => bytes.ends_with(lit),
            (Matcher::General(tokens), _) => {
                glob(tokens, bytes.len(), |t, c| bytes[t] as u32 == c as u32)
            }
            // A non-ASCII literal never equals ASCII text... except by
            // folding (the Kelvin sign folds to `k`), so ask the char path.
            _ => self.matches(std::str::from_utf8(bytes).unwrap_or_default()),
        }
    }
}

/// Compares folded `text` with `lit`; `whole` demands equal length, otherwise
/// `lit` need only be a prefix of `text`.
#[inline]
fn eq_folded(
    mut text: impl Iterator<Item = char>,
    lit: impl Iterator<Item = char>,
    whole: bool,
    fold: bool,
) -> bool {
    for l in lit {
        match text.next() {
            Some(c) if (if fold { fold_char(c) } else { c }) == l => {}
            _ => return false,
        }
    }
    !whole || text.next().is_none()
}

/// Glob matching with one backtrack point: the last `*` seen. Linear for a
/// single `*`, and O(text × pattern) in the worst case, never exponential.
fn match_general(pat: &[Token], text: &str, fold: bool) -> bool {
    // ASCII text (site names, codes, most cities) is matched on bytes with no
    // allocation; anything else goes through chars.
    if text.is_ascii() {
        let bytes = text.as_bytes();
        return glob(pat, bytes.len(), |t, c| {
            let b = bytes[t];
            (if fold { b.to_ascii_lowercase() } else { b }) as u32 == c as u32
        });
    }
    let chars: Vec<char> = if fold {
        text.chars().map(fold_char).collect()
    } else {
        text.chars().collect()
    };
    glob(pat, chars.len(), |t, c| chars[t] == c)
}

/// The glob walk over a text of `len` units, comparing unit `t` with a
/// literal through `eq`: one backtrack point, the last `*` seen.
#[inline]
fn glob(pat: &[Token], len: usize, eq: impl Fn(usize, char) -> bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < len {
        match pat.get(p) {
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Lit(c)) if eq(t, *c) => {
                p += 1;
                t += 1;
            }
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    // Let the last `*` swallow one more unit and retry.
                    star = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|t| *t == Token::Star)
}

/// A compiled rule.
#[derive(Clone, Debug)]
pub struct CompiledRule {
    site: Pattern,
    city: Pattern,
    countries: Vec<Pattern>,
}

impl CompiledRule {
    /// Compiles one rule.
    pub fn new(rule: &DistributionRule) -> CompiledRule {
        let field = |f: &Option<String>| Pattern::new(f.as_deref().unwrap_or(""));
        CompiledRule {
            site: field(&rule.site_name),
            city: field(&rule.city_name),
            countries: rule.country_codes.iter().map(|c| Pattern::new(c)).collect(),
        }
    }

    /// Whether a site with these attributes matches this rule.
    pub fn matches(&self, site_name: &str, city: &str, country: &str) -> bool {
        self.site.matches(site_name) && self.matches_place(city, country)
    }

    /// Whether this rule accepts every city and country.
    fn any_place(&self) -> bool {
        matches!(self.city.matcher, Matcher::Any)
            && self
                .countries
                .iter()
                .all(|p| matches!(p.matcher, Matcher::Any))
    }

    /// Whether the city and country parts of this rule match.
    fn matches_place(&self, city: &str, country: &str) -> bool {
        self.city.matches(city) && self.matches_country(country)
    }

    fn matches_country(&self, country: &str) -> bool {
        self.countries.is_empty() || self.countries.iter().any(|p| p.matches(country))
    }
}

/// A compiled set of rules: a site is selected when any rule matches it.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// Compiles `rules` once, for matching many sites.
    pub fn new(rules: &[DistributionRule]) -> RuleSet {
        RuleSet {
            rules: rules.iter().map(CompiledRule::new).collect(),
        }
    }

    /// Whether any rule matches the site.
    pub fn matches(&self, site: &EdgeSite) -> bool {
        self.matches_fields(&site.name, &site.city_name, &site.country_code)
    }

    /// Whether any rule matches a site with these attributes.
    pub fn matches_fields(&self, site_name: &str, city: &str, country: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.matches(site_name, city, country))
    }

    /// The sites any rule selects, in the order given.
    ///
    /// Builds a [`SiteIndex`] and selects in it; a caller selecting often
    /// among the same sites (the hub, between edge registrations) keeps the
    /// index and calls [`RuleSet::select_in`] instead.
    pub fn select<'a>(&self, sites: &'a [EdgeSite]) -> Vec<&'a EdgeSite> {
        if self.rules.iter().all(CompiledRule::any_place) {
            // Only names matter (also when there are no rules): an index
            // would cost more than it saves.
            return sites.iter().filter(|s| self.matches(s)).collect();
        }
        let index = SiteIndex::new(sites);
        self.select_in(&index)
            .into_iter()
            .map(|i| &sites[i])
            .collect()
    }

    /// The positions of the sites any rule selects, ascending.
    ///
    /// Equal to filtering with `matches`. City and country patterns are
    /// evaluated once per distinct city and per distinct country (hundreds,
    /// against hundreds of thousands of sites) into rule bitmasks; each site
    /// then costs two mask loads and the site-name patterns of the rules its
    /// place satisfies, compared as bytes against names folded in advance.
    /// Large sets are split across the cores.
    pub fn select_in(&self, index: &SiteIndex) -> Vec<usize> {
        let words = self.rules.len().div_ceil(64).max(1);
        let masks = |values: &[String], matches: &dyn Fn(&CompiledRule, &str) -> bool| {
            let mut out = vec![0u64; values.len() * words];
            for (v, value) in values.iter().enumerate() {
                for (r, rule) in self.rules.iter().enumerate() {
                    if matches(rule, value) {
                        out[v * words + r / 64] |= 1 << (r % 64);
                    }
                }
            }
            out
        };
        let places = Places {
            words,
            city: masks(&index.cities, &|r, c| r.city.matches(c)),
            country: masks(&index.countries, &|r, cc| r.matches_country(cc)),
        };
        let n = index.len();
        if n < PARALLEL_MIN_SITES {
            return self.select_range(index, &places, 0..n);
        }
        // Asked only for large sets: on Linux this reads cgroup files.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if threads < 2 {
            return self.select_range(index, &places, 0..n);
        }
        let chunk = n.div_ceil(threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|from| {
                    let places = &places;
                    scope.spawn(move || self.select_range(index, places, from..n.min(from + chunk)))
                })
                .collect();
            let mut selected = Vec::new();
            for part in parts {
                // A panic in a worker is a bug in the matcher; surface it.
                selected.extend(part.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            selected
        })
    }

    fn select_range(
        &self,
        index: &SiteIndex,
        places: &Places,
        range: std::ops::Range<usize>,
    ) -> Vec<usize> {
        let words = places.words;
        let mut selected = Vec::new();
        for i in range {
            let (city, country) = (
                index.city_of[i] as usize * words,
                index.country_of[i] as usize * words,
            );
            let name = index.name(i);
            let hit = (0..words).any(|w| {
                let mut bits = places.city[city + w] & places.country[country + w];
                while bits != 0 {
                    let rule = &self.rules[w * 64 + bits.trailing_zeros() as usize];
                    if rule.site.matches_indexed(name) {
                        return true;
                    }
                    bits &= bits - 1;
                }
                false
            });
            if hit {
                selected.push(i);
            }
        }
        selected
    }
}

/// Per-rule bitmasks of each distinct city and country, `words` u64s each.
struct Places {
    words: usize,
    city: Vec<u64>,
    country: Vec<u64>,
}

/// Sites laid out for selection: cities and countries interned, names
/// folded in advance and stored back to back.
///
/// Build it once per change of the site list (the hub caches one) and select
/// in it with [`RuleSet::select_in`] as often as needed.
#[derive(Clone, Debug, Default)]
pub struct SiteIndex {
    /// Every site name, folded when ASCII (the common case) and as given
    /// otherwise, back to back.
    names: String,
    /// Where each name ends in `names`.
    ends: Vec<u32>,
    /// Whether each name is ASCII, so compared as folded bytes.
    ascii: Vec<bool>,
    city_of: Vec<u32>,
    country_of: Vec<u32>,
    cities: Vec<String>,
    countries: Vec<String>,
}

/// A site name as stored in a [`SiteIndex`].
#[derive(Clone, Copy)]
enum IndexedName<'a> {
    /// ASCII, already lower-cased.
    Folded(&'a [u8]),
    /// Anything else, as given.
    Text(&'a str),
}

impl SiteIndex {
    /// Indexes `sites`, keeping their order.
    pub fn new(sites: &[EdgeSite]) -> SiteIndex {
        /// Distinct values to ids, remembering the last one: neighbouring
        /// sites often share a city and country.
        #[derive(Default)]
        struct Interner<'a> {
            ids: HashMap<&'a str, u32, BuildHasherDefault<FxHasher>>,
            last: Option<(&'a str, u32)>,
        }
        fn intern<'a>(map: &mut Interner<'a>, values: &mut Vec<String>, v: &'a str) -> u32 {
            if let Some((last, id)) = map.last
                && last == v
            {
                return id;
            }
            let id = *map.ids.entry(v).or_insert_with(|| {
                values.push(v.to_string());
                (values.len() - 1) as u32
            });
            map.last = Some((v, id));
            id
        }
        let mut index = SiteIndex {
            names: String::with_capacity(sites.iter().map(|s| s.name.len()).sum()),
            ends: Vec::with_capacity(sites.len()),
            ascii: Vec::with_capacity(sites.len()),
            city_of: Vec::with_capacity(sites.len()),
            country_of: Vec::with_capacity(sites.len()),
            ..SiteIndex::default()
        };
        let (mut cities, mut countries) = (Interner::default(), Interner::default());
        for site in sites {
            let ascii = site.name.is_ascii();
            let start = index.names.len();
            index.names.push_str(&site.name);
            if ascii {
                index.names[start..].make_ascii_lowercase();
            }
            index.ends.push(index.names.len() as u32);
            index.ascii.push(ascii);
            index
                .city_of
                .push(intern(&mut cities, &mut index.cities, &site.city_name));
            index.country_of.push(intern(
                &mut countries,
                &mut index.countries,
                &site.country_code,
            ));
        }
        index
    }

    /// How many sites.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no sites.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn name(&self, i: usize) -> IndexedName<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let text = &self.names[start..self.ends[i] as usize];
        if self.ascii[i] {
            IndexedName::Folded(text.as_bytes())
        } else {
            IndexedName::Text(text)
        }
    }
}

/// Below this many sites a second thread costs more than it saves.
const PARALLEL_MIN_SITES: usize = 32_768;

/// The multiply-rotate hash of rustc's `FxHasher`: the memo keys are short,
/// trusted strings from our own store, so SipHash's DoS resistance buys
/// nothing and costs most of a lookup.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The reference: fold both sides, then an escaped, anchored regex.
    fn reference(pattern: &str, text: &str) -> bool {
        let pattern = if pattern.is_empty() { "*" } else { pattern };
        let mut re = String::from("^");
        for c in fold(pattern).chars() {
            match c {
                '*' => re.push_str("(?s:.*)"),
                '?' => re.push_str("(?s:.)"),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap().is_match(&fold(text))
    }

    #[track_caller]
    fn check(pattern: &str, text: &str, expected: bool) {
        assert_eq!(
            Pattern::new(pattern).matches(text),
            expected,
            "{pattern:?} ~ {text:?}"
        );
        assert_eq!(
            reference(pattern, text),
            expected,
            "reference {pattern:?} ~ {text:?}"
        );
    }

    #[test]
    fn wildcard_cases() {
        check("*", "", true);
        check("", "anything", true);
        check("US_NY_Art0123", "us_ny_art0123", true);
        check("US_NY_Art0123", "US_NY_Art01234", false);
        check("US_*", "US_NY_Art0123", true);
        check("US_*", "DE_BE_Art0001", false);
        check("*0123", "US_NY_Art0123", true);
        check("*0123", "US_NY_Art0124", false);
        check("US_??_*", "US_NY_Art0123", true);
        check("US_??_*", "US_NYC_Art0123", false);
        check("M?nchen", "München", true);
        check("M?nchen", "MÜNCHEN", true);
        check("münchen", "MÜNCHEN", true);
        check("M??nchen", "München", false);
        check("*a*b*c", "xxaxxbxxc", true);
        check("*a*b*c", "xxaxxcxxb", false);
        check("a*", "a", true);
        check("?", "", false);
        check("**", "x", true);
        check("*?", "", false);
        // `İ` lower-cases to two characters, so it is kept as is.
        check("İ", "İ", true);
        check("?", "İ", true);
    }

    #[test]
    fn case_sensitive_patterns() {
        let p = Pattern::case_sensitive("org/*/App?.jar");
        assert!(p.matches("org/acme/App1.jar"));
        assert!(!p.matches("org/acme/app1.jar"));
        assert!(Pattern::case_sensitive("").matches(""));
        assert!(!Pattern::case_sensitive("").matches("x"));
        assert!(Pattern::case_sensitive("*.JAR").matches("a.JAR"));
        assert!(!Pattern::case_sensitive("*.JAR").matches("a.jar"));
        assert!(!Pattern::case_sensitive("Lib*").matches("lib-1"));
    }

    #[test]
    fn rule_semantics() {
        let site = |name: &str, city: &str, cc: &str| EdgeSite::for_matching(name, city, cc);
        let sites = vec![
            site("us-east-1", "New York", "US"),
            site("us-west-1", "San Jose", "US"),
            site("de-fra-1", "Frankfurt", "DE"),
            site("de-muc-1", "München", "DE"),
        ];
        let names = |rules: &[DistributionRule]| -> Vec<String> {
            RuleSet::new(rules)
                .select(&sites)
                .into_iter()
                .map(|s| s.name.clone())
                .collect()
        };
        let rule = |s: Option<&str>, c: Option<&str>, cc: &[&str]| DistributionRule {
            site_name: s.map(str::to_string),
            city_name: c.map(str::to_string),
            country_codes: cc.iter().map(|c| c.to_string()).collect(),
        };
        assert_eq!(
            names(&[DistributionRule::default()]).len(),
            4,
            "{{}} is all sites"
        );
        assert_eq!(names(&[rule(Some("*"), None, &[])]).len(), 4);
        assert!(names(&[]).is_empty(), "no rules select nothing");
        assert_eq!(
            names(&[rule(None, None, &["de"])]),
            ["de-fra-1", "de-muc-1"]
        );
        assert_eq!(names(&[rule(None, Some("m?nchen"), &[])]), ["de-muc-1"]);
        // All fields must match within one rule ...
        assert!(names(&[rule(Some("us-*"), None, &["DE"])]).is_empty());
        // ... any country in the list will do ...
        assert_eq!(
            names(&[rule(Some("*-1"), None, &["FR", "U?"])]),
            ["us-east-1", "us-west-1"]
        );
        // ... and any rule in the set will do.
        assert_eq!(
            names(&[
                rule(None, Some("new york"), &[]),
                rule(Some("de-fra-*"), None, &[])
            ]),
            ["us-east-1", "de-fra-1"]
        );
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                3 => Just('*'),
                2 => Just('?'),
                4 => proptest::sample::select(vec!['a', 'b', 'A', 'k', '\u{212A}', 'ü', 'Ü', 'İ', '.', '[', '-']),
            ],
            0..8,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn rule_strategy() -> impl Strategy<Value = DistributionRule> {
        (
            proptest::option::of(pattern_strategy()),
            proptest::option::of(pattern_strategy()),
            proptest::collection::vec(pattern_strategy(), 0..3),
        )
            .prop_map(|(site_name, city_name, country_codes)| DistributionRule {
                site_name,
                city_name,
                country_codes,
            })
    }

    #[test]
    fn parallel_select_keeps_order_and_agrees() {
        // Past PARALLEL_MIN_SITES the sites are split across threads.
        let sites: Vec<EdgeSite> = (0..PARALLEL_MIN_SITES + 1000)
            .map(|i| {
                let cc = ["US", "DE", "JP"][i % 3];
                EdgeSite::for_matching(&format!("{cc}_{i:05}"), &format!("C{}", i % 17), cc)
            })
            .collect();
        let set = RuleSet::new(&[
            DistributionRule {
                site_name: Some("*7".into()),
                city_name: Some("C1?".into()),
                country_codes: vec![],
            },
            DistributionRule {
                site_name: Some("JP_0*".into()),
                city_name: None,
                country_codes: vec!["j?".into()],
            },
        ]);
        let expected: Vec<&EdgeSite> = sites.iter().filter(|s| set.matches(s)).collect();
        assert!(expected.len() > 1000, "the rules select a real share");
        assert_eq!(set.select(&sites), expected);
    }

    fn text_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(vec![
                'a', 'b', 'B', 'K', '\u{212A}', 'ü', 'Ü', 'İ', 'i', '.', '[', '-', '\n',
            ]),
            0..10,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn matcher_agrees_with_regex(pattern in pattern_strategy(), text in text_strategy()) {
            prop_assert_eq!(Pattern::new(&pattern).matches(&text), reference(&pattern, &text));
        }

        #[test]
        fn select_agrees_with_matching_each_site(
            rules in proptest::collection::vec(rule_strategy(), 0..70),
            places in proptest::collection::vec((text_strategy(), text_strategy()), 1..6),
            names in proptest::collection::vec(text_strategy(), 1..40),
        ) {
            // Few places shared by many sites exercise the per-place memo;
            // up to 70 rules spill the bitmask into a second word.
            let sites: Vec<EdgeSite> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let (city, cc) = &places[i % places.len()];
                    EdgeSite::for_matching(n, city, cc)
                })
                .collect();
            let set = RuleSet::new(&rules);
            let expected: Vec<&EdgeSite> = sites.iter().filter(|s| set.matches(s)).collect();
            prop_assert_eq!(set.select(&sites), expected);
        }

        #[test]
        fn any_string_matches_itself(text in "\\PC{0,12}") {
            // Without wildcards a pattern is a literal and matches itself.
            let literal: String = text.chars().filter(|c| *c != '*' && *c != '?').collect();
            prop_assert!(Pattern::new(&literal).matches(&literal));
        }
    }
}
