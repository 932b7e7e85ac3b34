//! Names the controllers give: a template's hash (`pod-template-hash`, the suffix of a
//! Deployment's ReplicaSets) and the random suffix of a Pod's name, both in apimachinery's
//! "safe" alphabet (no vowels, no look-alike characters, so no words and no confusion).

use rand::Rng;

/// `k8s.io/apimachinery/pkg/util/rand`'s alphabet.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `rand.String(n)`: `n` random characters of the alphabet.
pub fn random_suffix(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `rand.SafeEncodeString`: each byte mapped onto the alphabet.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// FNV-1a, 32 bits (`hash/fnv.New32a`).
fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// `controller.ComputeHash`: FNV-32a over the template (here its canonical JSON: serde_json
/// writes maps sorted) and the collision count when there is one, the decimal number safely
/// encoded.
pub fn template_hash(template: &serde_json::Value, collision_count: Option<i32>) -> String {
    let mut data = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&c.to_le_bytes());
    }
    safe_encode(&fnv32a(&data).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_and_alphabet() {
        // The FNV-1a test vectors.
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        let h = template_hash(&serde_json::json!({"a": 1}), None);
        assert!(
            h.len() <= 10 && h.bytes().all(|b| ALPHABET.contains(&b)),
            "{h}"
        );
        assert_ne!(h, template_hash(&serde_json::json!({"a": 1}), Some(1)));
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
    }
}
