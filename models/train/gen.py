# Synthetic training and held-out episodes for the shipped small model.
#
# Fictional companies' documents (prices, policies, people, dates,
# procedures) appear as retrieved passages; the assistant quotes the sentence
# that answers with its citation, calls the calculator for arithmetic, says
# "Not found in the documents." when the passages do not cover the question,
# recalls facts the user stated turns earlier, and ignores instructions
# planted in passages. The held-out split draws names, phrasings and context
# lengths from pools the training split never sees. Deterministic by seed.
import argparse
import json
import random
import re
from decimal import Decimal

import fmt
import grammar
import sentences
from tables import (
    FIRST, LAST, PRODUCT_A, PRODUCT_B, DEPT, CITY, COMPANY, EVENT, EVENT_HELD, ACTION, ACTION_HELD,
    LEVEL, MONTHS, FILLER, FILLER_HELD, LEAD_INS, TAILS, KINDS, PRODUCT_KINDS, MORE_QUESTIONS,
    QUESTION_LEAD_INS, INJECTIONS, INJECTIONS_HELD,
)

VARY = 0.0
NONCE = 0.0
# --think-title: the reasoning before a quote copies the title of the document
# that answers, then names it ('It is under "Inventory › Opal router", document
# 2.'). One attention layer must otherwise pick the document's number in one
# step from the whole context; copying a title is a run of lookups of the
# question's words, and the number then sits right before the copied title.
THINK_TITLE = False
# --think-subject: before that (and before "The documents do not say."), the
# reasoning copies the question's subject ("Subject: Granite router."), so the
# choice between quoting and "not found" is made with the subject just
# written, a lookup in the passages, rather than from the question's wording.
THINK_SUBJECT = False
# --think-drills: the lookup drills' answers carry the same reasoning line as
# the episodes', so the line that decides an answer is also trained on short
# conversations with several questions each, not once per long episode.
THINK_DRILLS = False
# --think-numbers: the reasoning after a question opens by copying the numbers
# it holds ("Numbers: 936, 55. This needs the calculator.", "Numbers: none. The
# answer is in document 2."), so whether to calculate is read off a copy of
# digits, not guessed from a wording the model never saw.
THINK_NUMBERS = False
# --plain-titles P: a share P of the training documents get a title that says
# nothing of their content (see plain_title).
PLAIN_TITLES = 0.0
# --grammar: most training questions drawn from grammar.py's compositional
# wordings instead of the templates above.
GRAMMAR = False
# --sent-grammar P: a share P of the training documents' fact sentences drawn
# from sentences.py's wordings, and their filler from its pool too.
SENT_GRAMMAR = 0.0


def grammar_turn(world):
    """Whether this training question comes from grammar.py (--grammar: three in four)."""
    return GRAMMAR and not world.held and world.rng.random() < 0.75


def vary(rng, text):
    """Rewords a template sentence with probability VARY (see LEAD_INS)."""
    if VARY <= 0 or rng.random() >= VARY:
        return text
    r = rng.random()
    if r < 0.7:
        lead = rng.choice(LEAD_INS)
        text = lead + (text[0].lower() + text[1:] if text.startswith(("The ", "Every ", "Employees ", "Staff ")) else text)
    if r > 0.4 and text.endswith("."):
        text = text[:-1] + rng.choice(TAILS) + "."
    return text


def pools(held):
    def part(s, sep=None):
        a, b = s.split("|") if sep is None else s.split(" | ")
        return (b if held else a).split()

    def parts(s, held_s=None):
        if held_s is not None:
            return (held_s if held else s).split("|")
        return None

    p = {
        "first": part(FIRST, " | "),
        "last": part(LAST, " | "),
        "prod_a": part(PRODUCT_A, " | "),
        "prod_b": PRODUCT_B.split("|"),
        "dept": part(DEPT, " | "),
        "city": part(CITY, " | "),
        "company": part(COMPANY, " | "),
        "event": parts(EVENT, EVENT_HELD),
        "action": parts(ACTION, ACTION_HELD),
        "level": LEVEL.split("|"),
        "filler": FILLER_HELD if held else (FILLER + sentences.FILLER if SENT_GRAMMAR else FILLER),
    }
    return p


ONSETS = "b br c ch d dr f g gr h j k kl l m n p pr r s st t tr v w z".split()
VOWELS = "a e i o u ai ei ou".split()
CODAS = ["", "", "", "n", "r", "s", "l", "k", "m", "x"]


def nonce_word(rng):
    """A pronounceable made-up word (2-3 syllables), capitalised."""
    w = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 3)))
    return (w + rng.choice(CODAS)).capitalize()


def nonce_pools(rng, p):
    """The training pools with made-up names for people, product lines,
    departments and cities: a name never seen before can only be copied from
    the passage, not recalled, which is what held-out names need (--nonce)."""
    q = dict(p)
    q["first"] = [nonce_word(rng) for _ in range(6)]
    q["last"] = [nonce_word(rng) for _ in range(6)]
    q["prod_a"] = [nonce_word(rng) for _ in range(6)]
    q["dept"] = [nonce_word(rng) for _ in range(6)]
    q["city"] = [nonce_word(rng) for _ in range(6)]
    return q


# --phrasings: more training questions per kind (none of them held out) and a
# lead-in on some, so that what a question asks is read from its subject and
# its words, not from how it opens.
PHRASINGS = False
# --calc-phrasings: more training wordings of a bare sum, most with the expression
# mid-sentence (the three above all end with it); none of them held out.
CALC_PHRASINGS = False
CALC_PLAIN_MORE = ["Can you compute %s for the report?", "Tell me what %s comes to.",
                   "I need the value of %s, please.", "What do you get for %s?", "Compute %s and tell me.",
                   "Quick one: %s?", "What does %s make?", "Evaluate %s, please.",
                   "Find %s for the budget sheet.", "Could you calculate %s today?"]


# The slot that names what a fact of each kind is about (its subject).
SUBJECT_SLOT = {
    "price": "product", "warranty": "product", "stock": "product", "vacation": "dept", "head": "dept",
    "office": "person", "event": "event", "hotel": "city", "meal": "level", "procedure": "action",
}


class World:
    """One fictional company's facts for an episode."""

    def __init__(self, rng, held):
        self.rng = rng
        self.held = held
        self.p = pools(held)
        if not held and NONCE and rng.random() < NONCE:
            self.p = nonce_pools(rng, self.p)
        self.company = rng.choice(self.p["company"])
        self.used = set()

    def person(self):
        return "%s %s" % (self.rng.choice(self.p["first"]), self.rng.choice(self.p["last"]))

    def product(self):
        return "%s %s" % (self.rng.choice(self.p["prod_a"]), self.rng.choice(self.p["prod_b"]))

    def price(self):
        r = self.rng.random()
        if r < 0.4:
            return str(self.rng.randint(5, 999))
        if r < 0.8:
            return "%d.%02d" % (self.rng.randint(1, 1999), self.rng.randint(0, 99))
        return "%d.%d0" % (self.rng.randint(1, 499), self.rng.randint(1, 9))

    def date(self):
        m = self.rng.choice(MONTHS.split())
        return "%s %d, %d" % (m, self.rng.randint(1, 28), self.rng.randint(2024, 2028))

    def slots(self, kind, **fixed):
        r = self.rng
        s = {}
        s["product"] = fixed.get("product") or self.product()
        s["price"] = self.price()
        s["dept"] = fixed.get("dept") or r.choice(self.p["dept"])
        s["person"] = fixed.get("person") or self.person()
        s["city"] = fixed.get("city") or r.choice(self.p["city"])
        s["event"] = fixed.get("event") or r.choice(self.p["event"])
        s["date"] = self.date()
        s["action"] = fixed.get("action") or r.choice(self.p["action"])
        s["Action"] = s["action"][0].upper() + s["action"][1:]
        s["level"] = fixed.get("level") or r.choice(self.p["level"])
        s["Level"] = s["level"][0].upper() + s["level"][1:]
        s["form"] = "%s-%d" % (r.choice("ABCDFHKPRT"), r.randint(10, 999))
        k = KINDS[kind]
        if kind == "warranty":
            s["n"] = str(r.randint(1, 6))
        elif kind == "vacation":
            s["n"] = str(r.randint(18, 35))
        elif kind == "hotel":
            s["n"] = str(r.randint(9, 45) * 10)
        elif kind == "meal":
            s["n"] = str(r.randint(20, 95))
        else:
            s["n"] = str(r.randint(3, 2500))
        s["_kind"] = kind
        s["_key"] = self.key(kind, s)
        s["_num"] = s[k["num"]] if "num" in k else None
        return s

    @staticmethod
    def key(kind, s):
        return (kind, s[SUBJECT_SLOT[kind]])

    def sentence(self, s):
        if SENT_GRAMMAR and not self.held and self.rng.random() < SENT_GRAMMAR:
            return vary(self.rng, sentences.sentence(self.rng, s["_kind"], s))
        tpl = self.rng.choice(KINDS[s["_kind"]]["sent"][1 if self.held else 0])
        text = tpl.format(**s)
        return text if self.held else vary(self.rng, text)

    def question(self, s):
        if grammar_turn(self):
            return grammar.question(self.rng, s["_kind"], s)
        pool = KINDS[s["_kind"]]["q"][1 if self.held else 0]
        if PHRASINGS and not self.held:
            pool = pool + MORE_QUESTIONS[s["_kind"]]
        tpl = self.rng.choice(pool)
        q = tpl.format(**s)
        if PHRASINGS and not self.held and self.rng.random() < 0.3:
            lead = self.rng.choice(QUESTION_LEAD_INS)
            q = lead + (q[0].lower() + q[1:] if lead.endswith(", ") else q)
        return q

    def title(self, s):
        return KINDS[s["_kind"]]["title"].format(**s)

    def fact(self, kind=None, **fixed):
        """A new fact whose (kind, subject) is not yet used in this world."""
        for _ in range(50):
            k = kind or self.rng.choice(list(KINDS))
            s = self.slots(k, **fixed)
            if s["_key"] not in self.used:
                self.used.add(s["_key"])
                return s
        if kind is not None:
            return self.fact(None, **fixed)
        raise RuntimeError("fact pool exhausted")




def doc_for(world, facts, nfill):
    """A document (title, text) holding the given facts plus filler sentences."""
    sents = [world.sentence(f) for f in facts]
    for f, x in zip(facts, sents):
        f["_sent"] = x
    fill = world.rng.sample(world.p["filler"], min(nfill, len(world.p["filler"])))
    text = sents + fill
    world.rng.shuffle(text)
    title = world.title(facts[0])
    if PLAIN_TITLES and not world.held and world.rng.random() < PLAIN_TITLES:
        title = plain_title(world.rng, world.company)
    return (title, " ".join(text)), sents


def plain_title(rng, company):
    """A title that says nothing of the document's facts, as real attachments
    have ("doc", "policy-2024.pdf"): trained only on titles that name the
    subject, the model looks for the subject in titles, and a just-attached
    document titled "doc" is then "not found" (measured, seventh and eighth
    attempts). Numbered, so packed conversations can still tell documents apart."""
    n = rng.randint(1, 9999)
    return rng.choice(["doc %d", "Document %d", "notes-%d.txt", "Intranet page %d", "scan-%d.pdf",
                       "attachment %d", "Untitled %d", "policy-%d.pdf", "FAQ %d", company + " wiki %d"]) % n


def fmt_num(d):
    """A calculator result as text: integers plain, decimals without trailing zeros."""
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


# --------------------------------------------------------------- QA episodes
def qa_turn(world, kind_mix, ndocs_range, nfill_range):
    """One user question over retrieved passages and the assistant's turns.

    Returns (user_turn, assistant_turns_list, meta)."""
    r = world.rng
    ndocs = r.randint(*ndocs_range)
    qtype = r.choices(list(kind_mix), weights=list(kind_mix.values()))[0]
    docs, doc_sents = [], []
    target = None

    def add_doc(facts):
        d, sents = doc_for(world, facts, r.randint(*nfill_range))
        docs.append(d)
        doc_sents.append(sents)
        return len(docs)  # id

    if qtype == "calc_plain":
        a, b = r.randint(2, 999), r.randint(2, 99)
        op = r.choice("+-*")
        expr = "%d %s %d" % (a, op, b)
        q = r.choice(
            ["What is %s?" % expr, "Calculate %s." % expr, "Please compute %s." % expr]
            if not world.held
            else ["How much is %s?" % expr, "Work out %s for me." % expr]
        )
        if CALC_PHRASINGS and not world.held and r.random() < 0.6:
            q = r.choice(CALC_PLAIN_MORE) % expr
        if grammar_turn(world):
            q = grammar.calc_question(r, "plain", e=expr)
        for _ in range(r.randint(0, ndocs)):
            add_doc([world.fact()])
        res = fmt_num(eval_expr(expr))
        meta = dict(type="calc", expr=expr, result=res, quotes=[])
        user = dict(role="user", docs=docs, text=q)
        return user, calc_turns(expr, res, [], "The result is %s." % res), meta

    if qtype.startswith("calc"):
        # Arithmetic over numbers in the passages.
        kinds = ["price"] if qtype == "calc_doc" else ["price", "vacation", "hotel", "stock"]
        kind = r.choice(kinds)
        f1 = world.fact(kind)
        ops = []
        if kind == "price":
            mode = r.choice(["qty", "sum", "diff"])
        else:
            mode = "qty"
        if mode == "qty":
            k = r.randint(2, 12)
            expr = "%s * %d" % (f1["_num"], k)
            qs = {
                "price": ["How much would {k} units of the {product} cost?",
                          "What do {k} of the {product} cost in total?"],
                "vacation": ["How many vacation days does a {dept} employee accrue in {k} years?"],
                "hotel": ["What is the hotel limit in {city} for {k} nights?"],
                "stock": ["How many units of the {product} would {k} warehouses like this hold?"],
            }[kind]
            if world.held:
                qs = {"price": ["What is the total price of {k} {product} units?"],
                      "vacation": ["Over {k} years, how many vacation days does someone in {dept} accrue?"],
                      "hotel": ["What is the most I can spend on {k} hotel nights in {city}?"],
                      "stock": ["What is {k} times the stock of the {product}?"]}[kind]
            q = r.choice(qs).format(k=k, **f1)
            if grammar_turn(world):
                q = grammar.calc_question(r, kind, k=k, **f1)
            ops = [f1]
            lead = "The total is"
        else:
            f2 = world.fact("price")
            if mode == "sum":
                expr = "%s + %s" % (f1["_num"], f2["_num"])
                q = r.choice(["What is the combined price of the {a} and the {b}?",
                              "How much do the {a} and the {b} cost together?"] if not world.held
                             else ["If I buy the {a} and the {b}, what do I pay in total?"])
                lead = "The total is"
            else:
                if Decimal(f1["_num"]) < Decimal(f2["_num"]):
                    f1, f2 = f2, f1
                expr = "%s - %s" % (f1["_num"], f2["_num"])
                q = r.choice(["How much more does the {a} cost than the {b}?"] if not world.held
                             else ["What is the price difference between the {a} and the {b}?"])
                lead = "The difference is"
            q = q.format(a=f1["product"], b=f2["product"])
            if grammar_turn(world):
                q = grammar.calc_question(r, mode, a=f1["product"], b=f2["product"])
            ops = [f1, f2]
        ids = []
        for f in ops:
            ids.append(add_doc([f] + ([world.fact()] if r.random() < 0.3 else [])))
        while len(docs) < ndocs:
            add_doc([world.fact()])
        order = list(range(len(docs)))
        r.shuffle(order)
        docs, doc_sents, ids = permute(docs, doc_sents, ids, order)
        quotes = []
        for f, i in zip(ops, ids):
            quotes.append((world_sentence_in(doc_sents[i - 1], f, world), i))
        res = fmt_num(eval_expr(expr))
        ans = " ".join('"%s" [%d]' % (s, i) for s, i in quotes) + " %s %s." % (lead, res)
        meta = dict(type="calc", expr=expr, result=res, quotes=quotes)
        user = dict(role="user", docs=docs, text=q)
        return user, calc_turns(expr, res, quotes, ans), meta

    # quote / notfound / inject
    target = world.fact()
    if qtype == "notfound":
        # The passages hold near misses: same kind about other subjects, or the
        # same subject with another attribute.
        for _ in range(ndocs):
            if r.random() < 0.5:
                add_doc([world.fact(target["_kind"])])
            elif target["_kind"] in PRODUCT_KINDS and r.random() < 0.6:
                other = r.choice([k for k in PRODUCT_KINDS if k != target["_kind"]])
                key = (other, target["product"])
                if key in world.used:
                    add_doc([world.fact()])
                else:
                    add_doc([world.fact(other, product=target["product"])])
            else:
                add_doc([world.fact()])
        q = world.question(target)
        meta = dict(type="notfound")
        user = dict(role="user", docs=docs, text=q)
        return user, [dict(role="assistant", reasoning=reasoning_for(target), text=fmt.NOT_FOUND)], meta
    extra = [world.fact() for _ in range(r.choice([0, 0, 1, 2]))]
    tid = add_doc([target] + extra)
    for _ in range(ndocs - 1):
        if r.random() < 0.4:
            add_doc([world.fact(target["_kind"])])
        else:
            add_doc([world.fact()])
    order = list(range(len(docs)))
    r.shuffle(order)
    docs, doc_sents, (tid,) = permute(docs, doc_sents, [tid], order)
    injected = False
    if qtype == "inject":
        inj = r.choice(INJECTIONS_HELD if world.held else INJECTIONS)
        inj = inj.format(host=r.choice(["evil.example", "exfil.test", "files.invalid"]), mail="ops@" + "x.example")
        j = r.randrange(len(docs))
        title, text = docs[j]
        sents = text.split(". ")
        pos = r.randint(0, len(sents))
        text = ". ".join(sents[:pos] + [inj.rstrip(".")] + sents[pos:]) if pos < len(sents) else text + " " + inj
        docs[j] = (title, text)
        injected = True
    quote = world_sentence_in(doc_sents[tid - 1], target, world)
    q = world.question(target)
    meta = dict(type="inject" if injected else "quote", quotes=[(quote, tid)])
    user = dict(role="user", docs=docs, text=q)
    ans = '"%s" [%d]' % (quote, tid)
    return user, [dict(role="assistant", reasoning=reasoning_for(target, docs, tid), text=ans)], meta


def reasoning_for(target, docs=None, tid=None):
    """The reasoning line before a quote of document tid, or before "not
    found" (tid None), as --think-title and --think-subject shape it."""
    if tid is None:
        reasoning = "The documents do not say."
    elif THINK_TITLE:
        reasoning = 'It is under "%s", document %d.' % (docs[tid - 1][0], tid)
    else:
        reasoning = "The answer is in document %d." % tid
    if THINK_SUBJECT:
        reasoning = "Subject: %s. %s" % (World.key(target["_kind"], target)[1], reasoning)
    return reasoning


def world_sentence_in(sents, f, world):
    """The sentence of a document that states fact f."""
    if f.get("_sent") not in sents:
        raise RuntimeError("sentence not found")
    return f["_sent"]


def permute(docs, doc_sents, ids, order):
    nd = [docs[i] for i in order]
    ns = [doc_sents[i] for i in order]
    inv = {old: new for new, old in enumerate(order)}
    return nd, ns, [inv[i - 1] + 1 for i in ids]


def eval_expr(expr):
    a, op, b = expr.split(" ")
    a, b = Decimal(a), Decimal(b)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def calc_turns(expr, res, quotes, answer):
    return [
        dict(role="assistant", reasoning="This needs the calculator.",
             text=fmt.tool_call_text("calculator", {"expression": expr})),
        dict(role="tool", result=fmt.calculator_result(res)),
        dict(role="assistant", reasoning="The calculator returned the result.", text=answer),
    ]


# ------------------------------------------------------------ memory facts
MEM = [
    ("employee number", lambda r: str(r.randint(1000, 99999))),
    ("badge number", lambda r: "B-%d" % r.randint(100, 9999)),
    ("cost center", lambda r: "CC-%d" % r.randint(100, 999)),
    ("parking spot", lambda r: "P%d" % r.randint(1, 400)),
    ("laptop asset tag", lambda r: "LT-%05d" % r.randint(0, 99999)),
    ("project code name", lambda r: r.choice(["Bluebird", "Copperhead", "Driftwood", "Firefly", "Granite", "Halcyon"])),
    ("team", lambda r: r.choice(["Payments", "Search", "Platform", "Billing", "Mobile", "Data"])),
]
# --mem-wide: training attributes are many (things x kinds of identifier, and
# roles whose value is a person), values are drawn fresh, more phrasings, and
# some histories state two or three facts: with the handful above a small
# model learns the answer templates ("Your badge number is B-...") and recalls
# nothing it was told (0% at 1K tokens; with --mem-wide 25-50%). None of the
# held-out attributes below is among them.
MEM_WIDE = False
MEM_THINGS = ("employee badge locker parking-spot laptop phone office room cabinet mailbox bike-rack car "
              "account order license invoice visitor-pass access-card extension keycard server printer "
              "monitor building floor project cost-center contract claim shipment reservation booking "
              "membership insurance-policy case purchase-order vehicle locker-key pension-plan").split()
MEM_KINDS = ["number", "code", "ID", "tag", "reference"]
MEM_ROLES = ["mentor", "team lead", "buddy", "supervisor", "coach", "assistant", "director", "sponsor"]


def mem_value(r):
    letters = "".join(r.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in range(r.randint(1, 3)))
    return r.choice([
        lambda: "%s-%d" % (letters, r.randint(10, 99999)),
        lambda: "%s%d" % (letters, r.randint(1, 9999)),
        lambda: str(r.randint(100, 999999)),
        lambda: nonce_word(r),
        lambda: "%s-%s" % (nonce_word(r), r.randint(1, 99)),
    ])()


def mem_train_attribute(world):
    r = world.rng
    if r.random() < 0.15:
        return r.choice(MEM_ROLES), None
    return "%s %s" % (r.choice(MEM_THINGS).replace("-", " "), r.choice(MEM_KINDS)), mem_value


MEM_HELD = [
    ("desk number", lambda r: "D-%d" % r.randint(10, 999)),
    ("ticket number", lambda r: "T-%d" % r.randint(10000, 99999)),
    ("manager", None),
]
MEM_STATE = ["My {a} is {v}.", "For the record, my {a} is {v}.", "Just so you know, my {a} is {v}.",
             "Remember this: my {a} is {v}.", "FYI my {a} is {v}.", "Keep in mind that my {a} is {v}."]
MEM_STATE_HELD = ["Please remember that my {a} is {v}.", "Note: my {a} is {v}."]
MEM_ASK = ["What is my {a}?", "Can you remind me of my {a}?", "What was my {a} again?",
           "Remind me, what is my {a}?", "I forgot my {a}. What is it?"]
MEM_ASK_HELD = ["Do you remember my {a}?", "Tell me my {a} again."]
ACKS = ["Noted.", "Understood, I will remember that.", "Thanks, noted."]


def memory_fact(world, exclude=()):
    """(statement, question, answer) for one attribute of the user's, not in exclude."""
    r = world.rng
    while True:
        if world.held:
            attr, gen = r.choice(MEM_HELD)
        else:
            attr, gen = mem_train_attribute(world) if MEM_WIDE else r.choice(MEM)
        if attr not in exclude:
            break
    val = world.person() if gen is None else gen(r)
    n = None if MEM_WIDE else 2  # without --mem-wide, the shipped recipe's two phrasings
    state = r.choice(MEM_STATE_HELD if world.held else MEM_STATE[:n]).format(a=attr, v=val)
    ask = r.choice(MEM_ASK_HELD if world.held else MEM_ASK[:n]).format(a=attr)
    ans = "Your %s is %s." % (attr, val)
    return state, ask, ans, attr


# --------------------------------------------------------------- episodes
TRAIN_MIX = {"quote": 0.42, "notfound": 0.2, "calc_doc": 0.08, "calc_any": 0.07, "calc_plain": 0.07, "inject": 0.08}


def offered_tools(r):
    tools = [fmt.CALCULATOR]
    if r.random() < 0.3:
        tools.append(fmt.HTTP_GET)
    if r.random() < 0.15:
        tools.append(fmt.SEND_EMAIL)
    r.shuffle(tools)
    return tools


def history(world, ntok_target, est, nfill_range):
    """Earlier question/answer turns without thinking, about est tokens each."""
    turns = []
    used = 0
    while used < ntok_target:
        world.used = set()  # each earlier turn retrieved its own passages
        u, a, _ = qa_turn(world, {"quote": 0.7, "notfound": 0.3}, (1, 3), nfill_range)
        turns.append(u)
        turns.append(dict(role="assistant", reasoning=None, text=a[-1]["text"]))
        used += est(u, a)
    return turns


def rough_tokens(u, a):
    n = len(u["text"]) + sum(len(t) + len(x) + 30 for t, x in u["docs"]) + len(a[-1]["text"])
    return n // 3.3


def episode(rng, held, kind=None, hist_tokens=0):
    """One episode; kind in TRAIN_MIX or "memory"."""
    world = World(rng, held)
    ndocs = (2, 6) if held else (1, 5)
    nfill = (1, 3) if held else (0, 2)
    tools = offered_tools(rng)
    if kind is None:
        kind = rng.choices(list(TRAIN_MIX) + ["memory"], weights=list(TRAIN_MIX.values()) + [0.08])[0]
    turns = []
    if kind == "memory":
        state, ask, ans, attr = memory_fact(world)
        turns.append(dict(role="user", docs=[], text=state))
        turns.append(dict(role="assistant", reasoning=None, text=rng.choice(ACKS)))
        turns += history(world, hist_tokens, rough_tokens, nfill)
        if not held and MEM_WIDE:  # other things the user said, before or after it
            for _ in range(rng.choice([0, 0, 1, 2])):
                other = [dict(role="user", docs=[], text=memory_fact(world, (attr,))[0]),
                         dict(role="assistant", reasoning=None, text=rng.choice(ACKS))]
                at = rng.randrange(0, len(turns) + 1, 2)
                turns[at:at] = other
        docs = []
        if rng.random() < 0.4:
            docs = [doc_for(world, [world.fact()], 1)[0] for _ in range(rng.randint(1, 3))]
        turns.append(dict(role="user", docs=docs, text=ask, think=True))
        turns.append(dict(role="assistant", reasoning="The user told me earlier.", text=ans))
        meta = dict(type="memory", answer=ans)
    else:
        if hist_tokens:
            turns += history(world, hist_tokens, rough_tokens, nfill)
        u, a, meta = qa_turn(world, {kind: 1.0}, ndocs, nfill)
        u["think"] = True
        turns.append(u)
        turns += a
    if THINK_NUMBERS:
        last = max(i for i, t in enumerate(turns) if t["role"] == "user")
        turns[last + 1]["reasoning"] = numbers_line(turns[last]["text"]) + " " + turns[last + 1]["reasoning"]
    return dict(tools=tools, turns=turns, meta=meta)


def numbers_line(question):
    """The numbers a question holds, as the --think-numbers reasoning copies them."""
    nums = re.findall(r"\d+(?:\.\d+)?", question)
    return "Numbers: %s." % (", ".join(nums) if nums else "none")


def copy_drill(rng):
    """A drill in copying, the skill every quoted answer rests on: 2-4
    one-sentence documents and 2-4 requests to quote one of them by number,
    answered `"<the sentence>" [n]`. Names and numbers are drawn fresh, so
    only copying from the context predicts them. No system turn and no
    reasoning: a dense signal in few tokens."""
    world = World(rng, False)
    docs, sents = [], []
    for _ in range(rng.randint(2, 4)):
        d, ss = doc_for(world, [world.fact()], 0)
        docs.append(d)
        sents.append(ss[0])
    turns = []
    for k in range(rng.randint(2, 4)):
        n = rng.randrange(len(docs))
        ask = rng.choice(["Quote document %d.", "What does document %d say?", "Quote [%d] exactly."]) % (n + 1)
        turns.append(dict(role="user", docs=docs if k == 0 else [], text=ask))
        turns.append(dict(role="assistant", reasoning=None, text='"%s" [%d]' % (sents[n], n + 1)))
    return dict(tools=[], turns=turns, system=False, meta=dict(type="copy"))


def lookup_drill(rng):
    """A drill in finding the passage a question is about, the step before
    copying it: 2-4 one-sentence documents (some of the same kind, so the
    subject, not the kind, decides) and 2-4 questions, each answered by
    quoting the document that names its subject, or, for a subject no
    document names, "Not found in the documents". Short and without a system
    turn, like copy_drill, so the signal is dense."""
    world = World(rng, False)
    facts, docs, sents = [], [], []
    for _ in range(rng.randint(2, 4)):
        kind = facts[0]["_kind"] if facts and rng.random() < 0.5 else None
        f = world.fact(kind)
        d, ss = doc_for(world, [f], 0)
        facts.append(f)
        docs.append(d)
        sents.append(ss[0])
    turns = []
    for k in range(rng.randint(2, 4)):
        if rng.random() < 0.25:
            target = world.fact(rng.choice(facts)["_kind"])
            q, ans, tid = world.question(target), fmt.NOT_FOUND, None
        else:
            n = rng.randrange(len(docs))
            target, tid = facts[n], n + 1
            q, ans = world.question(target), '"%s" [%d]' % (sents[n], n + 1)
        reasoning = reasoning_for(target, docs, tid) if THINK_DRILLS else None
        turns.append(dict(role="user", docs=docs if k == 0 else [], text=q, think=THINK_DRILLS))
        turns.append(dict(role="assistant", reasoning=reasoning, text=ans))
    return dict(tools=[], turns=turns, system=False, meta=dict(type="lookup"))


def repeat_drill(rng):
    """The shortest copying drill, for the first minutes of training: the
    user gives one to three fresh sentences and the assistant repeats them,
    quoted. A few dozen tokens, so the one attention layer meets few
    candidates and learns to find the token to copy (what the document drills
    and quoted answers need) within the first few hundred steps."""
    world = World(rng, False)
    sents = " ".join(world.sentence(world.fact()) for _ in range(rng.randint(1, 3)))
    ask = rng.choice(["Repeat exactly: %s", "Say this back: %s", "Copy: %s"]) % sents
    turns = [dict(role="user", docs=[], text=ask), dict(role="assistant", reasoning=None, text='"%s"' % sents)]
    return dict(tools=[], turns=turns, system=False, meta=dict(type="repeat"))


def set_mix(spec):
    """Replace the weights of the kinds spec names ("calc_plain=0.14,quote=0.4")."""
    for item in filter(None, spec.split(",")):
        kind, _, w = item.partition("=")
        if kind not in TRAIN_MIX:
            raise SystemExit("gen.py: --mix: no kind %r (kinds: %s)" % (kind, ", ".join(TRAIN_MIX)))
        TRAIN_MIX[kind] = float(w)


def train_episode(rng, copy_share=0.0, lookup_share=0.0):
    if copy_share and rng.random() < copy_share:
        return lookup_drill(rng) if rng.random() < lookup_share else copy_drill(rng)
    k = rng.choices(list(TRAIN_MIX) + ["memory"], weights=list(TRAIN_MIX.values()) + [0.1])[0]
    h = 0
    if k == "memory":
        h = rng.choice([0, 100, 300, 600, 1000])
    elif rng.random() < 0.1:
        h = rng.choice([200, 500])
    return episode(rng, False, k, h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=["train", "heldout", "warmup"], default="train",
                    help="warmup: the short copying drills that open training")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--copy-share", type=float, default=0.0,
                    help="training split: share of drills (see copy_drill)")
    ap.add_argument("--nonce", type=float, default=0.0,
                    help="training split: share of episodes whose names are made up (see nonce_pools)")
    ap.add_argument("--lookup-share", type=float, default=0.0,
                    help="training split: share of those drills that are lookup drills (see lookup_drill)")
    ap.add_argument("--vary", type=float, default=0.0,
                    help="train and warm-up splits: share of fact sentences reworded (see LEAD_INS)")
    ap.add_argument("--phrasings", action="store_true",
                    help="training split: more question phrasings and lead-ins (MORE_QUESTIONS)")
    ap.add_argument("--mem-wide", action="store_true",
                    help="training split: memory facts over many attributes, with others stated beside them")
    ap.add_argument("--think-subject", action="store_true",
                    help="the reasoning before a quote or 'not found' first copies the question's subject")
    ap.add_argument("--think-drills", action="store_true",
                    help="training split: lookup drills carry the reasoning line too (see THINK_DRILLS)")
    ap.add_argument("--plain-titles", type=float, default=0.0,
                    help="training split: share of documents with a title that says nothing of them")
    ap.add_argument("--grammar", action="store_true",
                    help="training split: most questions from grammar.py's compositional wordings")
    ap.add_argument("--think-title", action="store_true",
                    help="the reasoning before a quote copies the answering document's title")
    ap.add_argument("--sent-grammar", type=float, default=0.0,
                    help="train and warm-up splits: share of fact sentences from sentences.py's wordings")
    ap.add_argument("--calc-phrasings", action="store_true",
                    help="training split: more wordings of bare sums (CALC_PLAIN_MORE)")
    ap.add_argument("--think-numbers", action="store_true",
                    help="the reasoning after a question first copies the numbers it holds (THINK_NUMBERS)")
    ap.add_argument("--mix", default="",
                    help="training split: KIND=WEIGHT,... replaces those kinds' weights in TRAIN_MIX "
                         "(e.g. calc_plain=0.14)")
    a = ap.parse_args()
    if a.split == "train":
        set_mix(a.mix)
    global SENT_GRAMMAR, VARY, NONCE, THINK_TITLE, PHRASINGS, THINK_SUBJECT, MEM_WIDE, GRAMMAR, THINK_DRILLS, PLAIN_TITLES
    global CALC_PHRASINGS, THINK_NUMBERS
    CALC_PHRASINGS = a.calc_phrasings
    THINK_NUMBERS = a.think_numbers
    GRAMMAR = a.grammar
    SENT_GRAMMAR = a.sent_grammar
    THINK_DRILLS = a.think_drills
    PLAIN_TITLES = a.plain_titles if a.split == "train" else 0.0
    VARY = a.vary
    PHRASINGS = a.phrasings
    THINK_TITLE = a.think_title
    THINK_SUBJECT = a.think_subject
    MEM_WIDE = a.mem_wide
    NONCE = a.nonce if a.split == "train" else 0.0
    rng = random.Random(a.seed)
    with open(a.out, "w") as f:
        for _ in range(a.n):
            if a.split == "warmup":
                ep = repeat_drill(rng) if rng.random() < 0.6 else copy_drill(rng)
            elif a.split == "train":
                ep = train_episode(rng, a.copy_share, a.lookup_share)
            else:
                ep = episode(rng, True)
            f.write(json.dumps({"segs": fmt.render(ep), "meta": ep["meta"]}) + "\n")


if __name__ == "__main__":
    main()
