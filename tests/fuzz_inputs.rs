//! No input makes the schema reader or the deployment-file parser panic.
//! Arbitrary text, and text built from the tokens that matter to them
//! (quotes, comments, brackets, keywords, numbers at the edges), goes through
//! every function that reads user-controlled text. A short run is part of
//! `cargo test`; `cargo xtask fuzz` runs it long (PROPTEST_CASES).

use std::path::Path;

use proptest::prelude::*;
use schema_diff::parse;

const SQL_TOKENS: &[&str] = &[
    "CREATE",
    "TABLE",
    "UNIQUE",
    "INDEX",
    "ON",
    "t",
    "x",
    "\"a b\"",
    "(",
    ")",
    ",",
    "'",
    "\"",
    "`",
    "[",
    "]",
    "--",
    "/*",
    "*/",
    "\n",
    " ",
    ";",
    "CHECK",
    "WHERE",
    "COLLATE",
    "NOCASE",
    "GENERATED",
    "ALWAYS",
    "AS",
    "ASC",
    "DESC",
    "PRIMARY",
    "KEY",
    "NOT",
    "NULL",
    "DEFAULT",
    "0x1F",
    "ISNULL",
    "STRICT",
    "WITHOUT",
    "ROWID",
    "REFERENCES",
    "é",
    "\u{0}",
    "=",
    ".",
];

const TOML_TOKENS: &[&str] = &[
    "[files]",
    "[[step]]",
    "\n",
    "prod",
    "dev",
    "staging",
    " = ",
    "\"prod.db\"",
    "\"dev.db\"",
    "{ path = \"s.db\", temporary = true }",
    "op",
    "\"snapshot\"",
    "\"apply\"",
    "\"swap\"",
    "\"replace\"",
    "from",
    "to",
    "schema",
    "timeout",
    "1e309",
    "nan",
    "inf",
    "-1",
    "2.2e6",
    "604800",
    "0",
    "keep_backups",
    "18446744073709551615",
    "backup",
    "true",
    "false",
    "rename",
    "[\"t.a=b\"]",
    "[\"=\"]",
    "[\"\\\"\"]",
    "rename_table",
    "dev_data",
    "[\"*a*a*a*b\"]",
    "migration_tables",
    "on_violation",
    "\"skip\"",
    "rejects",
    "name",
    "description",
    "\"",
    "'",
    "#",
    "[",
    "]",
    "{",
    "}",
    ",",
];

fn built(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(tokens), 0..40).prop_map(|t| t.concat())
}

fn text(tokens: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), built(tokens)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_schema_reader_never_panics(sql in text(SQL_TOKENS), column in text(SQL_TOKENS)) {
        let _ = parse::parses(&sql);
        let _ = parse::parse_table(&sql);
        let _ = parse::check_constraints(&sql);
        let _ = parse::column_definition(&sql, &column);
        let _ = parse::generated_expression(&sql, &column);
        let _ = parse::index_parts(&sql);
        let _ = parse::normalize(&sql);
        let _ = schema_diff::diff::affinity(&sql);
        let _ = schema_diff::glob_match(&sql, &column);
        let _ = schema_diff::Hints::parse(
            std::slice::from_ref(&sql),
            std::slice::from_ref(&column),
            std::slice::from_ref(&sql),
            &[],
            std::slice::from_ref(&column),
        );
    }

    #[test]
    fn the_deployment_parser_never_panics(toml in text(TOML_TOKENS)) {
        let _ = refresh_dev::Deployment::parse(Path::new("/nowhere/deploy.toml"), &toml);
    }
}
