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


Event = tuple[str, Sequence[str], bool, "float | None"]
"""One shown item of a history: (title, genres, clicked, rating or None)."""

SKIP_GENRES = 2
"""Genres named in the skip summary (the most skipped ones)."""


def event_text(title: str, clicked: bool, rating: float | None, genres: Sequence[str] = ()) -> str:
    """One clicked item in a history: title, genres and the observed feedback.

    Skipped items are not written one by one (see ``skip_summary``); ``clicked=False`` still
    renders a single skip, for callers that want it.
    """
    label = f"{title} [{', '.join(genres)}]" if genres else title
    if not clicked:
        return f"skipped {label}"
    if rating is None:
        return f"clicked {label}"
    return f"watched {label} (rated {int(rating)}/5)"


def skip_summary(n_skipped: int, genres: Sequence[Sequence[str]]) -> str:
    """One phrase for all skipped items: how many, and the genres skipped most.

    ``genres`` holds each skipped item's genres; ties in counts go to the genre seen first.
    """
    if n_skipped <= 0:
        return ""
    counts: dict[str, int] = {}
    for item_genres in genres:
        for g in item_genres:
            counts[g] = counts.get(g, 0) + 1
    top = sorted(counts, key=lambda g: -counts[g])[:SKIP_GENRES]  # sorted() is stable
    noun = "item" if n_skipped == 1 else "items"
    return f"skipped {n_skipped} {noun}" + (f", mostly {', '.join(top)}" if top else "")


def history_text(profile: str, events: Sequence[str]) -> str:
    """A profile followed by history phrases (already rendered), most recent first."""
    if not events:
        return f"{profile} History: none yet."
    return f"{profile} History: " + "; ".join(events) + "."


def history_phrases(events: Sequence[Event], n_clicks: int | None = None) -> list[str]:
    """Phrases of a structured history (most recent first): every click, then one skip summary.

    Clicks and ratings are what carry taste, so each keeps its own phrase (title, genres,
    rating); skips are many (four per slate) and individually weak, so they share one phrase.
    ``n_clicks`` keeps only the most recent clicks; the skip summary then covers the skips of
    the steps those clicks span (all skips when every click is kept).
    """
    clicks = [i for i, e in enumerate(events) if e[2]]
    end = len(events)
    if n_clicks is not None and n_clicks < len(clicks):
        # Events are most recent first: cut just before the first dropped click.
        end = clicks[n_clicks] if n_clicks >= 0 else 0
    kept = events[:end]
    phrases = [event_text(t, True, r, g) for t, g, c, r in kept if c]
    skipped = [g for _, g, c, _ in kept if not c]
    summary = skip_summary(len(skipped), skipped)
    return phrases + ([summary] if summary else [])


def render_history(profile: str, events: Sequence[Event], n_clicks: int | None = None) -> str:
    """The observable history as text: profile, clicks (most recent first), skip summary.

    The one renderer of history texts: the env's log, the training logs and MovieLens all call
    it (directly or through ``render_history_within``).
    """
    return history_text(profile, history_phrases(events, n_clicks))


def render_history_within(
    profile: str, events: Sequence[Event], n_tokens: Callable[[str], int], budget: int
) -> str:
    """``render_history`` keeping the most recent clicks whose text fits ``budget`` tokens.

    ``n_tokens`` counts the tokens of a text (a tokenizer's length). Whole clicks are dropped
    from the oldest end (with the skips of the steps they span); the profile is always kept.
    """
    full = render_history(profile, events)
    if n_tokens(full) <= budget:
        return full
    n = sum(1 for e in events if e[2])
    low, high = 0, n  # the largest fitting click count lies in [low, high)
    while high - low > 1:
        mid = (low + high) // 2
        if n_tokens(render_history(profile, events, mid)) <= budget:
            low = mid
        else:
            high = mid
    out = render_history(profile, events, low)
    if low == 0 and n_tokens(out) > budget:
        return history_text(profile, [])
    return out


def history_text_within(
    profile: str, events: Sequence[str], n_tokens: Callable[[str], int], budget: int
) -> str:
    """``history_text`` of rendered phrases, dropping whole phrases from the oldest end."""
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


def movie_description(year: int, genres: Sequence[str]) -> str:
    """A MovieLens movie's description from its year and genres (its only metadata)."""
    names = [g.lower() if g not in ("Sci-Fi", "Film-Noir") else g for g in genres if g != "unknown"]
    when = f"Released in {year}." if year > 0 else "Release year unknown."
    if not names:
        return f"{when} A film."
    kinds = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    article = "An" if kinds[0].lower() in "aeiou" else "A"
    return f"{when} {article} {kinds} film."


def movie_genres(genres: Sequence[str]) -> tuple[str, ...]:
    """A MovieLens movie's genre labels as items carry them ('unknown' when it has none)."""
    return tuple(genres) or ("unknown",)


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
