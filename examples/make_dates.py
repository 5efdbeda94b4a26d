"""Write examples/dates.tsv: dates written out in words, paired with ISO 8601 dates.

Each line is `source<TAB>target`, for example
`the twenty-first of march 1987<TAB>1987-03-21`. Dates are drawn uniformly from
1900-01-01 to 2099-12-31 and written in one of four styles, all from a seeded
generator, so the same seed always writes the same file.

    python examples/make_dates.py [--count 4000] [--seed 0] [--out examples/dates.tsv]
"""

import argparse
import datetime
import os

import numpy

MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
    "twenty-first",
    "twenty-second",
    "twenty-third",
    "twenty-fourth",
    "twenty-fifth",
    "twenty-sixth",
    "twenty-seventh",
    "twenty-eighth",
    "twenty-ninth",
    "thirtieth",
    "thirty-first",
]


def write_out(date, style):
    """Return the date in words in one of four styles (0 to 3)."""
    day, month, year = ORDINALS[date.day - 1], MONTHS[date.month - 1], date.year
    if style == 0:
        return f"the {day} of {month} {year}"
    if style == 1:
        return f"{month} {day}, {year}"
    if style == 2:
        return f"{date.day} {month} {year}"
    return f"{month} {date.day} {year}"


def make_pairs(count, seed):
    rng = numpy.random.default_rng(seed)
    first = datetime.date(1900, 1, 1).toordinal()
    last = datetime.date(2099, 12, 31).toordinal()
    pairs = []
    for ordinal, style in zip(
        rng.integers(first, last + 1, size=count), rng.integers(0, 4, size=count)
    ):
        date = datetime.date.fromordinal(int(ordinal))
        pairs.append((write_out(date, int(style)), date.isoformat()))
    return pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="number of pairs")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--out",
        default=os.path.join(os.path.dirname(__file__), "dates.tsv"),
        help="output file",
    )
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as file:
        for source, target in make_pairs(args.count, args.seed):
            file.write(f"{source}\t{target}\n")
    print(f"wrote {args.count} pairs to {args.out}")


if __name__ == "__main__":
    main()
