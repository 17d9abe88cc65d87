//! AQL: parsing, meaning, and that no input makes the parser panic.

use proptest::prelude::*;

use super::*;
use crate::artifact::{Item, ItemKind, ItemPath, RepoKey};
use crate::bundle::Props;
use crate::digest::Ingest;

fn item(repo: &str, path: &str, size: u64, created: u64, props: &[(&str, &[&str])]) -> Item {
    let props: Props = props
        .iter()
        .map(|(k, vs)| (k.to_string(), vs.iter().map(|v| v.to_string()).collect()))
        .collect();
    Item {
        repo: RepoKey::parse(repo).unwrap(),
        path: ItemPath::parse(path).unwrap(),
        kind: ItemKind::File,
        size,
        checksums: Some(Ingest::of(path.as_bytes())),
        created,
        modified: created + 1,
        created_by: "alice".into(),
        modified_by: "bob".into(),
        props,
    }
}

fn corpus() -> Vec<Item> {
    let mut folder = Item::folder(
        RepoKey::parse("libs").unwrap(),
        ItemPath::parse("org").unwrap(),
        5,
        "alice",
    );
    folder.props.insert("team".into(), vec!["core".into()]);
    vec![
        item(
            "libs",
            "org/acme/app-1.0.jar",
            100,
            1_700_000_000_000,
            &[("build.name", &["app"]), ("quality", &["ga", "lts"])],
        ),
        item(
            "libs",
            "org/acme/app-1.0-sources.jar",
            40,
            1_700_000_100_000,
            &[("build.name", &["app"])],
        ),
        item(
            "libs",
            "org/acme/lib.tgz",
            7,
            1_700_000_200_000,
            &[("quality", &["rejected"])],
        ),
        item(
            "docker",
            "img/manifest.json",
            2,
            1_600_000_000_000,
            &[("rank", &["10"])],
        ),
        item(
            "docker",
            "readme.md",
            9,
            1_600_000_000_000,
            &[("rank", &["9"])],
        ),
        folder,
    ]
}

#[track_caller]
fn check(aql: &str, expected: &[&str]) {
    let q = Query::parse(aql).unwrap_or_else(|e| panic!("{aql}: {e}"));
    let found: Vec<Item> = corpus()
        .into_iter()
        .filter(|i| q.criteria.matches(i))
        .collect();
    let got: Vec<String> = q
        .order_and_page(found)
        .iter()
        .map(|i| i.repo_path())
        .collect();
    assert_eq!(got, expected, "{aql}");
}

#[test]
fn criteria_semantics() {
    check(
        r#"items.find({"repo":"docker"})"#,
        &["docker/img/manifest.json", "docker/readme.md"],
    );
    check(
        r#"items.find({"repo":{"$eq":"docker"},"name":{"$match":"*.md"}})"#,
        &["docker/readme.md"],
    );
    check(
        r#"items.find({"name":{"$match":"app-*.jar","$nmatch":"*sources*"}})"#,
        &["libs/org/acme/app-1.0.jar"],
    );
    check(r#"items.find({"path":"."})"#, &["docker/readme.md"]);
    check(
        r#"items.find({"path":".","type":"any"})"#,
        &["docker/readme.md", "libs/org"],
    );
    check(
        r#"items.find({"path":{"$match":"org/*"},"type":"file"})"#,
        &[
            "libs/org/acme/app-1.0-sources.jar",
            "libs/org/acme/app-1.0.jar",
            "libs/org/acme/lib.tgz",
        ],
    );
    check(r#"items.find({"type":"folder"})"#, &["libs/org"]);
    check(
        r#"items.find({"size":{"$gt":"9","$lte":100}})"#,
        &[
            "libs/org/acme/app-1.0-sources.jar",
            "libs/org/acme/app-1.0.jar",
        ],
    );
    check(
        r#"items.find({"depth":1,"type":"any"})"#,
        &["docker/readme.md", "libs/org"],
    );
    check(
        r#"items.find({"created":{"$lt":"2023-01-01"},"type":"any"})"#,
        &["docker/img/manifest.json", "docker/readme.md", "libs/org"],
    );
    check(
        r#"items.find({"sha256":{"$eq":null},"type":"any"})"#,
        &["libs/org"],
    );
    // Files only unless a type is named: a folder has no checksum.
    check(r#"items.find({"sha256":{"$eq":null}})"#, &[]);
    check(
        r#"items.find({"created_by":"alice","modified_by":{"$ne":"bob"},"type":"folder"})"#,
        &["libs/org"],
    );
}

#[test]
fn and_or_and_compact_forms() {
    // Members of an object inside $or are alternatives, even with a repeated key.
    check(
        r#"items.find({"type":"file","$or":[{"name":"lib.tgz","name":"readme.md"}]})"#,
        &["docker/readme.md", "libs/org/acme/lib.tgz"],
    );
    check(
        r#"items.find({"$or":[{"repo":"docker"},{"@quality":"ga"}]})"#,
        &[
            "docker/img/manifest.json",
            "docker/readme.md",
            "libs/org/acme/app-1.0.jar",
        ],
    );
    check(
        r#"items.find({"$or":[{"$and":[{"repo":"libs"},{"name":{"$match":"*.tgz"}}]},{"$and":[{"repo":"docker"},{"name":{"$match":"*.json"}}]}]})"#,
        &["docker/img/manifest.json", "libs/org/acme/lib.tgz"],
    );
    check(
        r#"items.find({"$and":[{"repo":"libs","type":"file"}],"name":{"$match":"*.tgz"}})"#,
        &["libs/org/acme/lib.tgz"],
    );
    check(
        r#"items.find({"$or":{"name":"readme.md","name":"lib.tgz"}})"#,
        &["docker/readme.md", "libs/org/acme/lib.tgz"],
    );
    check(
        r#"items.find({})"#,
        &[
            "docker/img/manifest.json",
            "docker/readme.md",
            "libs/org/acme/app-1.0-sources.jar",
            "libs/org/acme/app-1.0.jar",
            "libs/org/acme/lib.tgz",
        ],
    );
    check(
        r#"items.find({"type":"any"})"#,
        &[
            "docker/img/manifest.json",
            "docker/readme.md",
            "libs/org",
            "libs/org/acme/app-1.0-sources.jar",
            "libs/org/acme/app-1.0.jar",
            "libs/org/acme/lib.tgz",
        ],
    );
    check(r#"items.find({"$or":[]})"#, &[]);
}

#[test]
fn property_criteria() {
    check(
        r#"items.find({"@quality":"lts"})"#,
        &["libs/org/acme/app-1.0.jar"],
    );
    check(
        r#"items.find({"@quality":{"$match":"re*"}})"#,
        &["libs/org/acme/lib.tgz"],
    );
    check(
        r#"items.find({"@build.name":{"$eq":"app"},"name":{"$nmatch":"*sources*"}})"#,
        &["libs/org/acme/app-1.0.jar"],
    );
    // $ne holds when no value equals, also when the key is absent.
    check(
        r#"items.find({"repo":"libs","@quality":{"$ne":"rejected"}})"#,
        &[
            "libs/org/acme/app-1.0-sources.jar",
            "libs/org/acme/app-1.0.jar",
        ],
    );
    // Numeric property values compare as numbers: 10 > 9.
    check(
        r#"items.find({"@rank":{"$gt":"9"}})"#,
        &["docker/img/manifest.json"],
    );
    check(
        r#"items.find({"@team":"core","type":"folder"})"#,
        &["libs/org"],
    );
}

#[test]
fn sort_offset_limit_include() {
    check(
        r#"items.find({"type":"file"}).sort({"$desc":["size"]}).limit(2)"#,
        &[
            "libs/org/acme/app-1.0.jar",
            "libs/org/acme/app-1.0-sources.jar",
        ],
    );
    check(
        r#"items.find({"type":"file"}).sort({"$asc":["size","name"]}).offset(1).limit(2)"#,
        &["libs/org/acme/lib.tgz", "docker/readme.md"],
    );
    check(r#"items.find().offset(10)"#, &[]);
    let q = Query::parse(r#"items.find().include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#).unwrap();
    assert_eq!(q.include.fields.len(), 10);
    assert!(q.include.all_props);
    let q = Query::parse(r#"items.find().include("*","@quality")"#).unwrap();
    assert_eq!(q.include.fields.len(), Field::ALL.len());
    assert_eq!(q.include.props, ["quality"]);
    let q = Query::parse("items.find()").unwrap();
    assert_eq!(q.include.fields, Field::DEFAULT);
}

#[test]
fn hints_name_the_equalities_every_match_has() {
    let q = Query::parse(r#"items.find({"repo":"libs","path":"org/acme","name":"x.jar","@build.name":"app","size":{"$gt":1}})"#).unwrap();
    let h = q.criteria.hint();
    assert_eq!(h.repo.unwrap().as_str(), "libs");
    assert_eq!(h.folder.as_deref(), Some("org/acme"));
    assert_eq!(h.name.as_deref(), Some("x.jar"));
    assert_eq!(h.prop, Some(("build.name".into(), "app".into())));
    // The file-only default does not hide them.
    let q = Query::parse(r#"items.find({"repo":"libs"})"#).unwrap();
    assert_eq!(q.criteria.hint().repo.unwrap().as_str(), "libs");
    // A `$match` with a literal start gives a prefix; one that starts
    // with a wildcard, or `$nmatch`, gives none.
    let prefix = |aql: &str| Query::parse(aql).unwrap().criteria.hint().name_prefix;
    assert_eq!(
        prefix(r#"items.find({"name":{"$match":"lib-1.?.jar"}})"#).as_deref(),
        Some("lib-1.")
    );
    assert_eq!(prefix(r#"items.find({"name":{"$match":"*.jar"}})"#), None);
    assert_eq!(prefix(r#"items.find({"name":{"$nmatch":"lib*"}})"#), None);
    // Alternatives give no constraint.
    let q = Query::parse(r#"items.find({"$or":[{"repo":"a"},{"repo":"b"}]})"#).unwrap();
    assert_eq!(q.criteria.hint(), ItemHint::default());
}

#[test]
fn builds_queries() {
    let q =
        Query::parse(r#"builds.find({"name":"app","number":"7"}).include("module.artifact.item")"#)
            .unwrap();
    assert_eq!(q.domain, Domain::Builds);
    assert_eq!(
        q.build_criteria,
        [
            ("name".to_string(), "app".to_string()),
            ("number".into(), "7".into())
        ]
    );
}

#[track_caller]
fn check_error(aql: &str, fragments: &[&str]) {
    let err = Query::parse(aql).map(|_| ()).unwrap_err().to_string();
    assert!(err.starts_with("invalid aql: line "), "{aql}: {err}");
    for f in fragments {
        assert!(err.contains(f), "{aql}: {err:?} lacks {f:?}");
    }
}

#[test]
fn malformed_queries_say_where_and_what() {
    check_error("", &["column 1", "expected a domain"]);
    check_error("items", &["expected '.' after the domain"]);
    check_error("items.search({})", &["expected 'find'"]);
    check_error("artifacts.find({})", &["unsupported domain 'artifacts'"]);
    check_error("items.find(", &["expected a value"]);
    check_error(
        r#"items.find({"repo":"a"}"#,
        &["expected ')' to close 'find('"],
    );
    check_error(
        r#"items.find({"repo" "a"})"#,
        &["column 20", "expected ':' after a key"],
    );
    check_error(r#"items.find({repo:"a"})"#, &["expected a quoted key"]);
    check_error(
        r#"items.find({"repo":"a",})"#,
        &["expected a quoted key, found '}'"],
    );
    check_error(r#"items.find({"repo":"a})"#, &["unterminated string"]);
    check_error(
        r#"items.find({"colour":"red"})"#,
        &["unknown item field 'colour'", "known fields: repo"],
    );
    check_error(
        r#"items.find({"name":{"$like":"a"}})"#,
        &["unknown operator '$like'"],
    );
    check_error(
        r#"items.find({"size":{"$gt":"big"}})"#,
        &["'big' is not a whole number"],
    );
    check_error(
        r#"items.find({"created":{"$gt":"yesterday"}})"#,
        &["is not a date"],
    );
    check_error(r#"items.find({"$or":"x"})"#, &["$or takes an array"]);
    check_error(
        r#"items.find({"$or":["x"]})"#,
        &["expected an object inside $or"],
    );
    check_error(r#"items.find({"$msp":[]})"#, &["'$msp' is not supported"]);
    check_error(r#"items.find({"name":{}})"#, &["at least one comparison"]);
    check_error(r#"items.find({"@":"x"})"#, &["followed by a property key"]);
    check_error(r#"items.find({}).limit(-1)"#, &["whole number"]);
    check_error(
        r#"items.find({}).limit(1).limit(2)"#,
        &["'limit' is given twice"],
    );
    check_error(
        r#"items.find({}).sort({"$up":["name"]})"#,
        &["expected $asc or $desc"],
    );
    check_error(
        r#"items.find({}).sort({"$asc":[]})"#,
        &["needs at least one field"],
    );
    check_error(
        r#"items.find({}).include("nope")"#,
        &["unknown item field 'nope'"],
    );
    check_error(r#"items.find({}).include()"#, &["at least one field"]);
    check_error(
        r#"items.find({}).group("x")"#,
        &["unknown modifier 'group'"],
    );
    check_error(r#"items.find({}) junk"#, &["expected '.' or the end"]);
    check_error("items.find({\"a\":\"\u{1}\"})", &["control character"]);
    check_error(r#"items.find({"name":"a\q"})"#, &["bad escape"]);
    check_error(
        &format!("items.find({}{})", "[".repeat(100), "]".repeat(100)),
        &["nesting deeper than 64"],
    );
    check_error(
        r#"builds.find({"status":"x"})"#,
        &["supports \"name\" and \"number\""],
    );
    check_error(
        "items.find({\n  \"repo\": @\n})",
        &["line 2 column 11", "unexpected character '@'"],
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Arbitrary text never panics the parser: it parses or says why.
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,80}") {
        let _ = Query::parse(&text);
    }

    /// Near-valid queries (mutations of a real one) never panic either.
    #[test]
    fn parser_never_panics_on_mutated_queries(cut in 0usize..200, insert in "[{}\\[\\]\":,.$@a-z0-9 ]{0,6}") {
        let base = r#"items.find({"repo":"libs","$or":[{"name":{"$match":"*.jar"}},{"@q":"ga"}]}).include("name","property").sort({"$asc":["name"]}).offset(1).limit(5)"#;
        let at = base.char_indices().map(|(i, _)| i).nth(cut % base.len()).unwrap_or(0);
        let mutated = format!("{}{}{}", &base[..at], insert, &base[at..]);
        let _ = Query::parse(&mutated);
    }
}

#[test]
fn relative_times_count_back_from_the_given_now() {
    // Corpus items were created at 1.7e12 (libs) and 1.6e12 (docker) ms.
    let now = 1_700_000_200_000 + 86_400_000; // a day after the newest item
    let matching = |aql: &str| -> Vec<String> {
        let q = Query::parse_at(aql, now).unwrap_or_else(|e| panic!("{aql}: {e}"));
        corpus()
            .into_iter()
            .filter(|i| q.criteria.matches(i))
            .map(|i| i.repo_path())
            .collect()
    };
    let libs = [
        "libs/org/acme/app-1.0.jar",
        "libs/org/acme/app-1.0-sources.jar",
        "libs/org/acme/lib.tgz",
    ];
    assert_eq!(
        matching(r#"items.find({"type":"file","created":{"$last":"2d"}})"#),
        libs
    );
    assert_eq!(
        matching(r#"items.find({"type":"file","created":{"$last":"1d"}})"#),
        ["libs/org/acme/lib.tgz"],
        "exactly a day old is within the last day"
    );
    assert_eq!(
        matching(r#"items.find({"type":"file","created":{"$last":"23minutes"}})"#),
        Vec::<String>::new()
    );
    assert_eq!(
        matching(r#"items.find({"type":"file","created":{"$before":"1w"}})"#),
        ["docker/img/manifest.json", "docker/readme.md"]
    );
    // Units from the AQL documentation, long and short.
    for (span, ms) in [
        ("10ms", 10),
        ("10mills", 10),
        ("3s", 3_000),
        ("3seconds", 3_000),
        ("2minutes", 120_000),
        ("1d", 86_400_000),
        ("1days", 86_400_000),
        ("2w", 1_209_600_000),
        ("2weeks", 1_209_600_000),
    ] {
        assert_eq!(Span::parse(span).unwrap().before(now), now - ms, "{span}");
    }
    let march_31 = crate::time::parse_iso("2026-03-31T08:30:00Z").unwrap();
    assert_eq!(
        crate::time::format_iso(Span::parse("1mo").unwrap().before(march_31)),
        "2026-02-28T08:30:00.000Z",
        "a month back clamps to the month's last day"
    );
    assert_eq!(
        crate::time::format_iso(Span::parse("1y").unwrap().before(march_31)),
        "2025-03-31T08:30:00.000Z"
    );
    assert_eq!(
        crate::time::format_iso(Span::parse("25months").unwrap().before(march_31)),
        "2024-02-29T08:30:00.000Z",
        "leap years count"
    );
    assert_eq!(
        Span::parse("1000000y").unwrap().before(march_31),
        0,
        "saturates"
    );
    for bad in ["d", "3", "3h", "3 d", "-3d", "3D", "x3d"] {
        assert!(Span::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn relative_times_are_refused_where_they_mean_nothing() {
    let now = 1_700_000_000_000;
    for (aql, fragment) in [
        (
            r#"items.find({"created":{"$last":"3h"}})"#,
            "is not a relative time",
        ),
        (r#"items.find({"size":{"$last":"3d"}})"#, "not on 'size'"),
        (
            r#"items.find({"@quality":{"$before":"3d"}})"#,
            "not to the property 'quality'",
        ),
    ] {
        let err = Query::parse_at(aql, now)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains(fragment), "{aql}: {err}");
    }
    // Without a clock the core cannot resolve them, and says so.
    let err = Query::parse(r#"items.find({"modified":{"$last":"1d"}})"#)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("parse_at"), "{err}");
}
