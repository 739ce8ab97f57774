# Compositional training questions (gen.py --grammar).
#
# With a handful of question templates a kind, the small model decides
# between quoting, "not found" and the calculator from how a question opens,
# and copies whatever span sits where the trained templates put the subject
# ("Subject: stock level of"). Here a question is a frame (where the subject
# and the asked-for attribute sit) times an attribute wording times a subject
# wording times an optional lead-in and tail: hundreds of wordings a kind, the
# subject anywhere in the sentence, so neither position nor opening words
# predict the answer and the subject's own words must. None of the held-out
# split's key wordings is used (HELD_OUT_WORDS, checked by the tests).

# Frames over a noun phrase for the subject ({S}) and one for the attribute ({A}).
FRAMES = [
    "What is the {A} of {S}?", "What's the {A} for {S}?", "Can you tell me the {A} of {S}?",
    "I need the {A} of {S}.", "{S}: what is the {A}?", "Do you know the {A} of {S}?",
    "Please look up the {A} of {S}.", "Regarding {S}, what is the {A}?", "Find the {A} of {S}.",
    "Look up {S} and give me the {A}.", "The {A} of {S}, please.", "About {S}: the {A}?",
    "Could you find the {A} for {S}?", "Which {A} applies to {S}?", "Give me the {A} of {S}.",
]
# Per kind: subject noun phrases and attribute nouns for FRAMES, and whole
# questions in the kind's own words.
KIND_WORDS = {
    "price": dict(S=["the {product}", "our {product}"], A=["price", "cost", "retail price", "unit price"],
                  own=["How much is the {product}?", "What do we charge for the {product}?",
                       "How much do we ask for the {product}?", "The {product} costs how much?"]),
    "warranty": dict(S=["the {product}"], A=["warranty", "warranty period", "warranty length", "guarantee"],
                     own=["How many years of warranty does the {product} get?",
                          "Does the {product} have a warranty, and how long?",
                          "The {product}: how long is its warranty?"]),
    "stock": dict(S=["the {product}"], A=["unit count in the warehouse", "number of units on hand",
                                          "warehouse count", "inventory"],
                  own=["How many {product} units are in the warehouse?", "How many units of the {product} do we hold?",
                       "Count of {product} units in the warehouse?"]),
    "vacation": dict(S=["the {dept} department", "{dept} staff", "{dept} employees"],
                     A=["number of vacation days", "annual vacation", "vacation entitlement", "holiday days per year"],
                     own=["How many days of vacation do {dept} employees get?",
                          "Vacation days per year in {dept}?", "How much time off does the {dept} department get?"]),
    "head": dict(S=["the {dept} department", "{dept}"], A=["head", "leader", "manager", "director"],
                 own=["Who heads {dept}?", "Who leads {dept}?", "Who is the boss of the {dept} department?",
                      "Which person leads the {dept} team?"]),
    "office": dict(S=["{person}"], A=["office", "work location", "office city", "home office"],
                   own=["Where does {person} work from?", "Which city is {person}'s office in?",
                        "{person} works in which office?"]),
    "event": dict(S=["the {event}"], A=["date", "scheduled date", "day", "calendar date"],
                  own=["When will the {event} be?", "What day is the {event}?", "The {event} is on which date?",
                       "When do we have the {event}?"]),
    "hotel": dict(S=["{city}", "a stay in {city}"], A=["nightly hotel limit", "hotel budget", "hotel rate limit",
                                                       "maximum hotel rate per night"],
                  own=["How much may I pay per hotel night in {city}?", "Hotel limit per night for {city}?",
                       "What can a hotel in {city} cost per night?"]),
    "meal": dict(S=["{level} staff", "a {level} employee"], A=["daily meal allowance", "meal budget per day",
                                                               "meal allowance", "daily food budget"],
                 own=["What may {level} staff spend on food per day?", "Daily meals for {level} staff: how much?",
                      "How much do {level} staff get for meals each day?"]),
    "procedure": dict(S=None, A=None,
                      own=["How would I {action}?", "Steps to {action}?", "What form do I need to {action}?",
                           "Which form is needed to {action}?", "I need to {action}. What is the process?",
                           "Explain how to {action}.", "What is the process to {action}?",
                           "Who handles requests to {action}?", "To {action}, what do I submit?",
                           "Can you tell me how to {action}?"]),
}
LEADS = ["", "", "", "Quick question: ", "Hi! ", "Hello, ", "Please help: ", "Thanks in advance. ",
         "I have a question. ", "Hey, ", "Good morning! ", "Sorry to bother you, "]
TAILS = ["", "", "", " Thanks!", " Please cite the document.", " Thank you.", " I need it today."]
# Calculator questions: plain arithmetic ({e}), a quantity times a fact, and
# sums and differences of two prices.
CALC = {
    "plain": ["What is {e}?", "Calculate {e}.", "Please compute {e}.", "{e} = ?", "Can you calculate {e}?",
              "Compute {e} for me, please.", "What do you get for {e}?", "Evaluate {e}.", "What does {e} come to?",
              "Solve {e}."],
    "price": ["What would {k} {product} units cost?", "Price for {k} of the {product}?",
              "If I order {k} of the {product}, what is the cost?", "{k} units of the {product}: what would that cost?",
              "How much for {k} units of the {product}?", "What do {k} of the {product} cost altogether?"],
    "vacation": ["How many vacation days does someone in {dept} accrue over {k} years?",
                 "In {k} years, how many vacation days does a {dept} employee get?"],
    "hotel": ["How much may {k} hotel nights in {city} cost at most?", "What is the hotel limit for {k} nights in {city}?"],
    "stock": ["How many units would {k} warehouses with the {product}'s stock hold?",
              "If the {product} stock were {k} times larger, how many units would that be?"],
    "sum": ["What do the {a} and the {b} cost combined?", "Add up the prices of the {a} and the {b}.",
            "Together, what do the {a} and the {b} cost?", "What is the sum of the prices of the {a} and the {b}?"],
    "diff": ["How much cheaper is the {b} than the {a}?", "By how much does the {a} cost more than the {b}?",
             "What separates the prices of the {a} and the {b}?", "How much more is the {a} than the {b}?"],
}
# Wordings that only the held-out split's questions use.
HELD_OUT_WORDS = ["sell for", "expensive", "under warranty", "stock level", "allowance in", "runs",
                  "based", "happen", "cap ", "claim", "should I do", "How much is 1", "Work out",
                  "total price", "pay in total", "price difference", "times the stock", "the most I can"]


def _dress(rng, q):
    lead = rng.choice(LEADS)
    if lead.endswith(", "):
        q = q[0].lower() + q[1:] if not q.startswith(("I ", "I'")) else q
    return lead + q + rng.choice(TAILS)


def _cap(s):
    return s[0].upper() + s[1:]


def question(rng, kind, slots):
    """A training question asking for `kind` about the fact's subject."""
    w = KIND_WORDS[kind]
    if w["S"] is None or rng.random() < 0.35:
        q = rng.choice(w["own"]).format(**slots)
    else:
        frame = rng.choice(FRAMES)
        subj = rng.choice(w["S"]).format(**slots)
        if frame.startswith("{S}"):
            subj = _cap(subj)
        q = frame.format(S=subj, A=rng.choice(w["A"]))
    return _dress(rng, q)


def calc_question(rng, mode, **slots):
    """A training calculator question; mode is plain, price, vacation,
    hotel, stock, sum or diff."""
    return _dress(rng, rng.choice(CALC[mode]).format(**slots))
