"""Text templates: the one place that says how items, profiles and histories read as text.

Everything a recommender may observe about an item or a user is rendered here, so that the
bag-of-words baseline and the language-model encoders read exactly the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

TOPIC_NAMES: tuple[str, ...] = (
    "space",
    "cooking",
    "football",
    "jazz",
    "gardening",
    "finance",
    "horror",
    "romance",
    "history",
    "technology",
    "travel",
    "wildlife",
    "fitness",
    "comedy",
    "crime",
    "fashion",
)
"""Hidden topic names (never shown as such: items carry genre labels and topic words)."""

TOPIC_WORDS: tuple[tuple[str, ...], ...] = (
    (
        "galaxy",
        "orbit",
        "astronaut",
        "rocket",
        "planet",
        "telescope",
        "nebula",
        "comet",
        "satellite",
        "cosmos",
        "lunar",
        "asteroid",
        "launch",
        "starship",
    ),
    (
        "recipe",
        "kitchen",
        "chef",
        "baking",
        "flavour",
        "spices",
        "dinner",
        "pasta",
        "dessert",
        "oven",
        "bread",
        "soup",
        "grill",
        "sauce",
    ),
    (
        "goal",
        "striker",
        "league",
        "stadium",
        "midfield",
        "penalty",
        "coach",
        "derby",
        "kickoff",
        "referee",
        "transfer",
        "cup",
        "defender",
        "match",
    ),
    (
        "saxophone",
        "swing",
        "improvisation",
        "trumpet",
        "bebop",
        "piano",
        "blues",
        "quartet",
        "groove",
        "melody",
        "club",
        "rhythm",
        "solo",
        "vinyl",
    ),
    (
        "garden",
        "roses",
        "compost",
        "seedlings",
        "soil",
        "orchard",
        "pruning",
        "greenhouse",
        "blossom",
        "harvest",
        "herbs",
        "tulips",
        "hedge",
        "allotment",
    ),
    (
        "stocks",
        "investing",
        "market",
        "budget",
        "savings",
        "inflation",
        "dividends",
        "banking",
        "pension",
        "portfolio",
        "economy",
        "mortgage",
        "trading",
        "wealth",
    ),
    (
        "haunted",
        "ghost",
        "nightmare",
        "zombie",
        "creepy",
        "curse",
        "vampire",
        "scream",
        "monster",
        "terror",
        "midnight",
        "graveyard",
        "demon",
        "shadows",
    ),
    (
        "love",
        "wedding",
        "heartbreak",
        "romance",
        "couple",
        "kiss",
        "sweethearts",
        "passion",
        "proposal",
        "valentine",
        "soulmate",
        "courtship",
        "affair",
        "letters",
    ),
    (
        "empire",
        "medieval",
        "ancient",
        "revolution",
        "dynasty",
        "war",
        "archive",
        "pharaoh",
        "castle",
        "treaty",
        "centuries",
        "monarchy",
        "ruins",
        "chronicle",
    ),
    (
        "software",
        "robots",
        "computer",
        "startup",
        "algorithm",
        "smartphone",
        "internet",
        "gadget",
        "coding",
        "chip",
        "silicon",
        "cloud",
        "network",
        "engineers",
    ),
    (
        "journey",
        "beaches",
        "backpacking",
        "island",
        "passport",
        "mountains",
        "cruise",
        "flight",
        "hostel",
        "roadtrip",
        "tourism",
        "villages",
        "landmarks",
        "voyage",
    ),
    (
        "safari",
        "elephants",
        "rainforest",
        "predators",
        "birds",
        "ocean",
        "wolves",
        "habitat",
        "savanna",
        "reef",
        "migration",
        "tigers",
        "conservation",
        "jungle",
    ),
    (
        "workout",
        "running",
        "yoga",
        "gym",
        "muscles",
        "marathon",
        "stretching",
        "cardio",
        "training",
        "strength",
        "sprint",
        "cycling",
        "weights",
        "endurance",
    ),
    (
        "jokes",
        "sitcom",
        "standup",
        "laughs",
        "parody",
        "sketch",
        "comedian",
        "hilarious",
        "prank",
        "satire",
        "punchline",
        "improv",
        "banter",
        "slapstick",
    ),
    (
        "detective",
        "murder",
        "heist",
        "police",
        "investigation",
        "gangster",
        "courtroom",
        "suspect",
        "evidence",
        "thriller",
        "robbery",
        "mystery",
        "clues",
        "verdict",
    ),
    (
        "runway",
        "designer",
        "style",
        "couture",
        "outfit",
        "models",
        "trends",
        "fabric",
        "wardrobe",
        "boutique",
        "tailoring",
        "sneakers",
        "vogue",
        "collection",
    ),
)
"""Words whose presence in an item's text signals its topic (with noise)."""

TOPIC_GENRE: tuple[int, ...] = (0, 1, 2, 3, 1, 4, 5, 6, 7, 0, 7, 7, 2, 6, 5, 3)
"""Observable genre of each hidden topic: several topics share a genre."""

GENRE_NAMES: tuple[str, ...] = (
    "Science & Tech",
    "Food & Home",
    "Sports",
    "Music & Style",
    "Money",
    "Dark Fiction",
    "Feel-good",
    "Documentary",
)

FILLER_WORDS: tuple[str, ...] = (
    "story",
    "guide",
    "episode",
    "series",
    "special",
    "review",
    "ideas",
    "world",
    "people",
    "season",
    "edition",
    "moments",
    "secrets",
    "life",
    "today",
    "week",
    "look",
    "inside",
)
"""Topic-free words that carry no signal."""

CLICKBAIT_PHRASES: tuple[str, ...] = (
    "You won't believe",
    "Shocking:",
    "This one trick about",
    "Everyone is talking about",
    "What happens next with",
    "Top 10 insane",
)
"""Openers typical of clickbait; most high-appeal items use one, some ordinary items too."""

QUALITY_WORDS: tuple[str, ...] = ("acclaimed", "in-depth", "award-winning", "thoughtful")
"""Words that weakly signal high quality."""

AGE_BANDS: tuple[str, ...] = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
OCCUPATIONS: tuple[str, ...] = (
    "student",
    "engineer",
    "teacher",
    "nurse",
    "artist",
    "lawyer",
    "retired",
    "writer",
    "programmer",
    "salesperson",
    "scientist",
    "homemaker",
    "doctor",
    "technician",
)


def item_text(title: str, description: str, genres: Sequence[str]) -> str:
    """How an item reads to a recommender: title, genres and description."""
    return f"{title}. Genres: {', '.join(genres)}. {description}"


def profile_text(age_band: str, occupation: str, taste: str) -> str:
    """How a user's profile reads: demographics and a stated-taste sentence."""
    return f"User aged {age_band}, works as {occupation}. Says: {taste}"


def event_text(title: str, clicked: bool, rating: float | None) -> str:
    """One shown item in a history: title with the observed feedback."""
    if not clicked:
        return f"skipped {title}"
    if rating is None:
        return f"clicked {title}"
    return f"watched {title} (rated {int(rating)}/5)"


def history_text(profile: str, events: Sequence[str]) -> str:
    """A user's observable history, most recent event first, after the profile."""
    if not events:
        return f"{profile} History: none yet."
    return f"{profile} History: " + "; ".join(events) + "."


def history_text_within(
    profile: str, events: Sequence[str], n_tokens: Callable[[str], int], budget: int
) -> str:
    """``history_text`` keeping the most recent events whose text fits ``budget`` tokens.

    ``n_tokens`` counts the tokens of a text (a tokenizer's length). Whole events are dropped
    from the oldest end; the profile is always kept (it may alone exceed the budget).
    """
    if n_tokens(history_text(profile, events)) <= budget:
        return history_text(profile, events)
    low, high = 0, len(events)  # the longest fitting prefix lies in [low, high)
    while high - low > 1:
        mid = (low + high) // 2
        if n_tokens(history_text(profile, events[:mid])) <= budget:
            low = mid
        else:
            high = mid
    return history_text(profile, events[:low])


def demographic_profile_text(age: int, gender: str, occupation: str) -> str:
    """A real user's profile from demographics only (MovieLens: age, gender, occupation)."""
    sex = {"M": "man", "F": "woman"}.get(gender, "person")
    job = {
        "none": "has no occupation",
        "other": "works in another occupation",
        "retired": "is retired",
        "student": "is a student",
        "homemaker": "is a homemaker",
    }.get(occupation, f"works as {occupation}")
    return f"User aged {int(age)}, a {sex} who {job}."
