//! Math: equations and worked calculations, with correct arithmetic.
//!
//! Every problem is built from its answer backwards (pick x, then write `a·x + b = c` with
//! c computed), so every equality printed holds exactly. Binary operators are written with
//! spaces (`22 - 7 = 15`); a negative number is written `-3`, in parentheses inside an
//! expression (`5 × (-3)`). Products use `×`; fractions are written `a/b`; no decimals.
//! `tests/corpora.rs` parses every chain of `=` in generated samples and checks it.
//!
//! Kinds: linear equation with a check, two-step arithmetic, multiplication by the
//! distributive law, percentages, rectangle area and perimeter, fractions with equal and
//! unequal denominators, the mean of a list, a shopping problem, squares and square roots,
//! a 2×2 linear system, triangle angles, division with remainder, powers, unit conversion,
//! speed and distance, a factorised quadratic with a check, order of operations, simple
//! interest, arithmetic sequences.

use rand::seq::SliceRandom;
use rand::Rng;

/// One sample: one to three worked problems, until `target` bytes.
pub fn sample(rng: &mut impl Rng, target: usize, max_bytes: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut len = 0;
    for k in 1..=4 {
        let mut p = problem(rng);
        if rng.gen_bool(0.4) {
            let label = pick(rng, &["Problem", "Exercise", "Example", "Question"]);
            p = format!("{label} {}: {p}", k + rng.gen_range(0..20));
        }
        if !parts.is_empty() && len + 1 + p.len() > max_bytes {
            break;
        }
        len += p.len() + usize::from(!parts.is_empty());
        parts.push(p);
        if len >= target {
            break;
        }
    }
    parts.join(if rng.gen_bool(0.5) { "\n" } else { " " })
}

fn pick<'a>(rng: &mut impl Rng, xs: &[&'a str]) -> &'a str {
    xs.choose(rng).expect("non-empty")
}

/// A number as it appears inside an expression: negatives in parentheses.
fn paren(v: i64) -> String {
    if v < 0 {
        format!("({v})")
    } else {
        v.to_string()
    }
}

/// `+ 5` or `- 5`: a signed term after another term.
fn signed(v: i64) -> String {
    if v < 0 {
        format!("- {}", -v)
    } else {
        format!("+ {v}")
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// One worked problem, a few sentences long.
fn problem(rng: &mut impl Rng) -> String {
    let then = pick(rng, &["Then", "Next", "After that", "Now"]);
    let so = pick(rng, &["So", "Therefore", "Hence", "Thus"]);
    match rng.gen_range(0..20) {
        0 => {
            let (a, x, b) = (rng.gen_range(2..13), rng.gen_range(-9..16), rng.gen_range(1..41));
            let c = a * x + b;
            format!(
                "Solve {a}x + {b} = {c}. Subtract {b} from both sides: {a}x = {c} - {b} = {}. Divide both sides by {a}: x = {x}. Check: {a} × {} + {b} = {c}.",
                c - b,
                paren(x)
            )
        }
        1 => {
            let (p, q, r) = (rng.gen_range(10..500), rng.gen_range(10..500), rng.gen_range(1..300));
            format!(
                "Compute {p} + {q} - {r}. First, {p} + {q} = {}. {then}, {} - {r} = {}. The answer is {}.",
                p + q,
                p + q,
                p + q - r,
                p + q - r
            )
        }
        2 => {
            let (m, tens, ones) = (rng.gen_range(11..99), rng.gen_range(1..9) * 10, rng.gen_range(1..10));
            let n = tens + ones;
            format!(
                "To multiply {m} by {n}, split {n} into {tens} + {ones}: {m} × {n} = {m} × {tens} + {m} × {ones} = {} + {} = {}.",
                m * tens,
                m * ones,
                m * n
            )
        }
        3 => {
            let base = 20 * rng.gen_range(1..60);
            let pct = *[5, 10, 15, 20, 25, 30, 40, 50, 60, 75].choose(rng).expect("non-empty");
            format!(
                "What is {pct}% of {base}? Multiply and divide by 100: {base} × {pct} / 100 = {}. {so} {pct}% of {base} is {}.",
                base * pct / 100,
                base * pct / 100
            )
        }
        4 => {
            let (w, h) = (rng.gen_range(2..40), rng.gen_range(2..40));
            let unit = pick(rng, &["cm", "m", "km", "inches"]);
            format!(
                "A rectangle is {w} {unit} wide and {h} {unit} long. Its area is {w} × {h} = {} square {unit}, and its perimeter is 2 × ({w} + {h}) = {} {unit}.",
                w * h,
                2 * (w + h)
            )
        }
        5 => {
            let d = rng.gen_range(3..13);
            let (a, b) = (rng.gen_range(1..d), rng.gen_range(1..d));
            let g = gcd(a + b, d);
            let simplified =
                if g > 1 { format!(", which simplifies to {}/{}", (a + b) / g, d / g) } else { String::new() };
            format!("Add the fractions {a}/{d} and {b}/{d}. The denominators match, so {a}/{d} + {b}/{d} = {}/{d}{simplified}.", a + b)
        }
        6 => {
            let (b, d) = (rng.gen_range(2..10), rng.gen_range(2..10));
            let (a, c) = (rng.gen_range(1..b + 3), rng.gen_range(1..d + 3));
            format!(
                "To add {a}/{b} and {c}/{d}, use the common denominator {}: {a}/{b} + {c}/{d} = {}/{} + {}/{} = {}/{}.",
                b * d,
                a * d,
                b * d,
                c * b,
                b * d,
                a * d + c * b,
                b * d
            )
        }
        7 => {
            let n = rng.gen_range(3..7);
            let mut xs: Vec<i64> = (0..n - 1).map(|_| rng.gen_range(1..60)).collect();
            let partial: i64 = xs.iter().sum();
            let r = rng.gen_range(1..60);
            xs.push(r + (n - (partial + r) % n) % n); // makes the sum a multiple of n: the mean is whole
            let sum: i64 = xs.iter().sum();
            let list: Vec<String> = xs.iter().map(|x| x.to_string()).collect();
            let terms = list.join(" + ");
            format!(
                "Find the mean of {}. Add them and divide by {n}: ({terms}) / {n} = {sum} / {n} = {}.",
                list.join(", "),
                sum / n
            )
        }
        8 => {
            let (q, p) = (rng.gen_range(2..15), rng.gen_range(2..25));
            let item =
                pick(rng, &["notebooks", "apples", "tickets", "pens", "loaves", "cups of tea", "stamps", "batteries"]);
            let total = q * p;
            let note = (total / 50 + 1) * 50;
            format!(
                "{} buys {q} {item} at {p} dollars each. The total is {q} × {p} = {total} dollars. Paying with {note} dollars, the change is {note} - {total} = {} dollars.",
                pick(rng, &["Ana", "Omar", "Kenji", "Sofia", "Leo", "Priya", "Marek", "Zoe", "Tariq", "Helga"]),
                note - total
            )
        }
        9 => {
            let n = rng.gen_range(2..40);
            format!("{n} squared is {n} × {n} = {}, so the square root of {} is {n}.", n * n, n * n)
        }
        10 => {
            let (x, y) = (rng.gen_range(1..30), rng.gen_range(-10..20));
            let (s, d) = (x + y, x - y);
            format!(
                "Solve x + y = {s} and x - y = {d}. Adding the equations gives 2x = {s} + {} = {}, so x = {} / 2 = {x}. {then}, y = {s} - {x} = {y}.",
                paren(d),
                s + d,
                s + d
            )
        }
        11 => {
            let (a, b) = (rng.gen_range(20..90), rng.gen_range(20..90));
            let c = 180 - a - b;
            if c <= 0 {
                return format!("Two angles of {a} and {b} degrees add up to {a} + {b} = {}, which is more than 180, so they cannot both be angles of one triangle.", a + b);
            }
            format!("Two angles of a triangle are {a} and {b} degrees. The angles add up to 180, so the third is 180 - {a} - {b} = {c} degrees.")
        }
        12 => {
            let (d, q) = (rng.gen_range(2..13), rng.gen_range(2..40));
            let r = rng.gen_range(0..d);
            let n = d * q + r;
            format!("{n} divided by {d} is {q} remainder {r}, because {d} × {q} + {r} = {n}.")
        }
        13 => {
            let (b, k): (i64, u32) = (rng.gen_range(2..8), rng.gen_range(2..6));
            let factors = vec![b.to_string(); k as usize].join(" × ");
            format!("{b} to the power {k} means multiplying {b} by itself {k} times: {factors} = {}.", b.pow(k))
        }
        14 => {
            let h = rng.gen_range(2..25);
            format!(
                "How many seconds are in {h} hours? {h} hours is {h} × 60 = {} minutes, and {} minutes is {} × 60 = {} seconds.",
                h * 60,
                h * 60,
                h * 60,
                h * 3600
            )
        }
        15 => {
            let (v, t) = (rng.gen_range(20..130), rng.gen_range(2..9));
            let vehicle = pick(rng, &["A train", "A car", "A cyclist", "A bus", "A ship"]);
            format!(
                "{vehicle} travels at {v} km per hour for {t} hours. Distance is speed times time: {v} × {t} = {} km. {so} after {} hours it has gone {} km.",
                v * t,
                t + 1,
                v * (t + 1)
            )
        }
        16 => {
            let (r1, r2) = (rng.gen_range(-9..10), rng.gen_range(-9..10));
            let (b, c) = (-(r1 + r2), r1 * r2);
            format!(
                "Solve x^2 {}x {} = 0. It factorises as (x {})(x {}) = 0, so x = {r1} or x = {r2}. Check: {} × {} + ({b}) × {} + ({c}) = 0.",
                signed(b),
                signed(c),
                signed(-r1),
                signed(-r2),
                paren(r1),
                paren(r1),
                paren(r1)
            )
        }
        17 => {
            let (a, b, c) = (rng.gen_range(2..20), rng.gen_range(2..12), rng.gen_range(2..12));
            format!(
                "Multiplication comes before addition: {a} + {b} × {c} = {a} + {} = {}, not ({a} + {b}) × {c} = {}.",
                b * c,
                a + b * c,
                (a + b) * c
            )
        }
        18 => {
            let (p, r, y) = (100 * rng.gen_range(1..50), rng.gen_range(1..10), rng.gen_range(1..8));
            format!(
                "A deposit of {p} euros earns {r}% simple interest for {y} years. The interest is {p} × {r} × {y} / 100 = {} euros, so the balance becomes {p} + {} = {} euros.",
                p * r * y / 100,
                p * r * y / 100,
                p + p * r * y / 100
            )
        }
        _ => {
            let (a, d) = (rng.gen_range(-5..20), rng.gen_range(2..9));
            let terms: Vec<String> = (0..4).map(|i| (a + i * d).to_string()).collect();
            let k = rng.gen_range(6..30);
            format!(
                "The sequence {} adds {d} each time, so the next term is {} + {d} = {}, and term number {k} is {} + {} × {d} = {}.",
                terms.join(", "),
                a + 3 * d,
                a + 4 * d,
                paren(a),
                k - 1,
                a + (k - 1) * d
            )
        }
    }
}
