//! The reader against what kubectl makes of the same text. Each expectation marked "as Go" was
//! checked with sigs.k8s.io/yaml 1.3.0 over gopkg.in/yaml.v2 2.4.0 behind apimachinery's document
//! splitter (the way `kubectl create -f` reads a file); "unlike Go" marks where podshim differs.

use serde_json::{json, Value};

use super::*;

fn all(text: &str) -> Vec<Value> {
    documents(text)
        .into_iter()
        .map(|(_, d)| d.unwrap().value)
        .collect()
}

fn one(text: &str) -> Value {
    let docs = all(text);
    assert_eq!(docs.len(), 1, "{docs:?}");
    docs.into_iter().next().unwrap()
}

fn error(text: &str) -> YamlError {
    documents(text)
        .into_iter()
        .find_map(|(_, d)| d.err())
        .expect("an error")
}

#[test]
fn single_quote_escape_in_double_quotes_reads_as_a_quote_as_go() {
    assert_eq!(
        one("a: \"x\\'y\" # c\nb: [1, \"\\'\", \"\\\\'\"]\n"),
        json!({"a": "x'y", "b": [1, "'", "\\'"]})
    );
    // Several scalars, each needing its own pass.
    let many: String = (0..20).map(|i| format!("k{i}: \"it\\'s {i}\"\n")).collect();
    assert_eq!(one(&many)["k19"], json!("it's 19"));
    // A later error on a line that had `\'` removed still points at the original column.
    let e = error("a: \"it\\'s\" x: [\n");
    assert_eq!((e.line, e.column), (Some(1), Some(12)), "{e:?}");
}

#[test]
fn other_escapes_as_go() {
    assert_eq!(
        one("a: \"\\x41\\u00e9\\U0001F600\\N\\_\\L\\P\\e\\0\\a\\b\\v\\f\\ \\t\\\t\"\n"),
        json!({"a": "Aé😀\u{85}\u{a0}\u{2028}\u{2029}\u{1b}\u{0}\u{7}\u{8}\u{b}\u{c} \t\t"})
    );
    assert_eq!(one("a: 'it''s'\n"), json!({"a": "it's"}));
    let e = error("a: \"\\q\"\n");
    assert!(e.message.contains("unknown escape"), "{e:?}");
    assert_eq!((e.line, e.column), (Some(1), Some(4)));
    assert!(error("a: \"\\ud800\"\n")
        .message
        .contains("invalid Unicode character escape"));
    // Unlike Go (go-yaml v2 has no `\/`), JSON's escape is accepted: kubectl reads a JSON file
    // with encoding/json, which takes it.
    assert_eq!(one("a: \"\\/\"\n"), json!({"a": "/"}));
}

#[test]
fn tabs_and_indentation_as_go() {
    assert_eq!(
        one("a:\tb\nkey:    value\t\n"),
        json!({"a": "b", "key": "value"})
    );
    assert_eq!(
        one("{\n\t\"a\": 1,\n\t\"b\": [\n\t\t\"x\"\n\t]\n}\n"),
        json!({"a": 1, "b": ["x"]})
    );
    // Flow collections and their quoted scalars are not held to the block's indentation.
    assert_eq!(one("a: [\nb,\n]\n"), json!({"a": ["b"]}));
    assert_eq!(
        one("c:\n  command: [\n    \"sh\",\n \"x\",\n\"y z\"\n  ]\n  m: {\n  k: v}\n"),
        json!({"c": {"command": ["sh", "x", "y z"], "m": {"k": "v"}}})
    );
    assert_eq!(
        one("a: [\"x\n y\"]\nb: [\"p\nq\"]\n"),
        json!({"a": ["x y"], "b": ["p q"]})
    );
    // The position of a later error is that of the text as written.
    let e = error("a: [\nb,\n]\nc: \"\\q\"\n");
    assert_eq!((e.line, e.column), (Some(4), Some(4)), "{e:?}");
    assert_eq!(one("a:\n- b\n-\n- c\n"), json!({"a": ["b", null, "c"]}));
    assert_eq!(one("a: b\r\nc: d\r\n"), json!({"a": "b", "c": "d"}));
    // A tab as indentation is refused, as by Go.
    let e = error("a:\n  b: 1\n \tc: 2\n");
    assert!(e.message.contains("tab"), "{e:?}");
}

#[test]
fn yaml_1_1_scalars_and_keys_as_go() {
    assert_eq!(
        one("a: yes\nb: 0644\nc: 1_000\nd: 0x1F\ne: 0o17\nf: 2001-12-14\ng: 8080.0\nh: ~\nj: 08\nk: 1e3\nl: 0b11\nm: -0644\nn: 1_\np: 0x\nq: 1:20\nr: Y\nt: On\nu: 00\n"),
        json!({"a":true,"b":420,"c":1000,"d":31,"e":15,"f":"2001-12-14","false":1,"g":8080,"h":null,"j":8,"k":1000,"l":3,"m":-420,"p":"0x","q":"1:20","r":true,"t":true,"u":0})
    );
    assert_eq!(
        one("1: a\nyes: b\n0x10: c\n1.5: d\n7: {1e7: a, 1.5e-5: b}\n'yes': q\n"),
        json!({"1": "a", "1.5": "d", "16": "c", "true": "b", "7": {"1.5e-05": "b", "1e+07": "a"}, "yes": "q"})
    );
    assert_eq!(
        one("a: !!str 12\nb: !!int \"12\"\nc: !!float 1\nd: !!bool yes\ne: !!timestamp 2001-12-14\nf: !foo bar\ng: !!binary aGk=\nh: ! 12\n"),
        json!({"a": "12", "b": 12, "c": 1, "d": true, "e": "2001-12-14", "f": "bar", "g": "hi", "h": "12"})
    );
    assert_eq!(
        error("a: !!int abc\n").message,
        "a: cannot decode !!str `abc` as a !!int"
    );
    assert_eq!(
        error("x:\n  i: .inf\n").message,
        "x.i: unsupported value: +Inf"
    );
    assert_eq!(
        error("~: a\n").message,
        "a null mapping key cannot be a JSON object key"
    );
    let doc = documents("a: [yes, '0644', 0644]\n").remove(0).1.unwrap();
    assert_eq!(
        doc.plain,
        HashMap::from([
            (vec![Seg::Key("a".into()), Seg::Index(0)], "yes".to_string()),
            (
                vec![Seg::Key("a".into()), Seg::Index(2)],
                "0644".to_string()
            ),
        ])
    );
}

#[test]
fn merge_keys_as_go() {
    // Later entries win, whether written or merged (go-yaml v2 writes them in order).
    assert_eq!(
        one("x: &a {p: 1, q: 1}\nw: {p: 0, <<: *a}\nz: {<<: *a, p: 2}\n")["w"],
        json!({"p": 1, "q": 1})
    );
    assert_eq!(
        one("x: &a {p: 1, q: 1}\nz: {<<: *a, p: 2}\n")["z"],
        json!({"p": 2, "q": 1})
    );
    // In a list of mappings the earlier ones win.
    assert_eq!(
        one("x: &a {p: 1}\nz: &b {p: 2, r: 2}\nw: {<<: [*a, *b]}\n")["w"],
        json!({"p": 1, "r": 2})
    );
    let e = error("w:\n  <<: [a]\n");
    assert_eq!(
        e.message,
        "w: map merge requires map or sequence of maps as the value"
    );
    assert_eq!((e.line, e.column), (Some(2), Some(3)));
    // A quoted `<<` is an ordinary key.
    assert_eq!(one("'<<': 1\n"), json!({"<<": 1}));
}

#[test]
fn duplicate_keys_are_refused_with_the_mapping_path() {
    let e = error("spec:\n  containers:\n  - name: c\n    image: a\n    image: b\n");
    assert_eq!(
        e.message,
        "spec.containers[0]: duplicate entry with key \"image\""
    );
    assert_eq!((e.line, e.column), (Some(3), Some(5)));
    // Keys equal once made strings, as Go compares them (0x1 is 1).
    assert_eq!(
        error("a: 1\n1: 2\n0x1: 3\n").message,
        "duplicate entry with key \"1\""
    );
}

#[test]
fn documents_are_split_as_kubectl_does() {
    let docs = documents("a: 1\n---\n# only a comment\n---   \nb: 2\n--- {c: 3}\n---\n");
    let values: Vec<Value> = docs.into_iter().map(|(_, d)| d.unwrap().value).collect();
    assert_eq!(
        values,
        vec![
            json!({"a": 1}),
            Value::Null,
            json!({"b": 2}),
            json!({"c": 3})
        ]
    );
    // Line numbers count from the top of the file.
    let docs = documents("a: 1\n---\nb: 2\n---\nc: [\n");
    assert_eq!(docs.len(), 3);
    let (n, e) = &docs[2];
    let e = e.as_ref().unwrap_err();
    assert_eq!((*n, e.line), (3, Some(6)), "{e:?}");
    // A broken document does not hide the ones after it.
    let docs = documents("a: [\n---\nb: 2\n");
    assert!(docs[0].1.is_err());
    assert_eq!(docs[1].1.as_ref().unwrap().value, json!({"b": 2}));
    // `...` ends a document (kubectl drops what follows it in the same piece).
    assert_eq!(
        all("a: 1\n...\nb: 2\n"),
        vec![json!({"a": 1}), json!({"b": 2})]
    );
    // As with kubectl, whose splitter cuts a `%YAML` directive off its document, and go-yaml v2
    // then wants a document start after it.
    assert!(error("%YAML 1.1\n---\na: 1\n")
        .message
        .contains("document start"));
    assert_eq!(all(""), vec![Value::Null; 0]);
}

#[test]
fn aliases_are_bounded() {
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (name, prev) in ["b", "c", "d", "e", "f", "g"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f"])
    {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    assert_eq!(error(&bomb).message, "repetition limit exceeded");
    assert_eq!(error("a: &a [*a]\n").message, "recursion limit exceeded");
    let e = error("a: *x\n");
    assert_eq!(
        (e.message.as_str(), e.line, e.column),
        ("unknown anchor", Some(1), Some(4))
    );
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(error(&deep).message, "recursion limit exceeded");
    // Ordinary reuse is fine.
    assert_eq!(
        one("x: &env [{name: A, value: b}]\nw: *env\n")["w"],
        json!([{"name": "A", "value": "b"}])
    );
}
