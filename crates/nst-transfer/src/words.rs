//! How counts read in messages: `1 evaluation`, `3 evaluations`.

/// `n` with its noun, singular for 1: `count(1, "evaluation")` is `1 evaluation`,
/// `count(2, "style image")` is `2 style images` (nouns made plural by an added `s`).
pub fn count(n: usize, noun: &str) -> String {
    count_as(n, noun, &format!("{noun}s"))
}

/// [`count`] for a noun whose plural is not its singular and an s: "1 patch", "9 patches".
pub fn count_as(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 { format!("1 {singular}") } else { format!("{n} {plural}") }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(super::count(1, "evaluation"), "1 evaluation");
        assert_eq!([0, 2].map(|n| super::count(n, "style image")), ["0 style images", "2 style images"]);
    }
}
