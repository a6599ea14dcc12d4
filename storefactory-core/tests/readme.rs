//! The spec file the README shows is the one `scripts/test.sh` renders.

#[test]
fn the_readme_shows_the_example_spec_file() {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a json block in the README");
    let shown: serde_json::Value = serde_json::from_str(block).expect("README spec is JSON");
    let file: serde_json::Value =
        serde_json::from_str(include_str!("../../examples/spec.json")).expect("spec.json");
    assert_eq!(shown, file, "README and examples/spec.json differ");
}
