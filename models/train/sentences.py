# Compositional training wordings of the documents' sentences (gen.py --sent-grammar).
#
# With one or two sentence templates a kind, the small model finds the
# sentence to quote by its template: teacher-forced on the training split the
# eighth attempt's model picked the right sentence of a held-out-style episode
# 27 times in 30, and 3 in 30 on the held-out split, whose sentences use other
# templates (and other filler), mostly choosing a filler sentence it knew by
# heart. Here a kind has a dozen wordings, the subject and the value in either
# order, and the filler is drawn from a few hundred combinations, so that
# neither a sentence's template nor its familiarity says which one answers:
# only the subject the question names does. None of the held-out split's
# sentences or their key wordings is used (HELD_OUT_WORDS, checked by tests).

SENTENCES = {
    "price": [
        "The {product} costs ${price}.", "The {product} is sold for ${price}.",
        "The {product} retails at ${price}.", "Our price for the {product} is ${price}.",
        "The {product} is priced at ${price}.", "Customers pay ${price} for the {product}.",
        "We charge ${price} for each {product}.", "One {product} sells at ${price}.",
        "The price of one {product} is ${price}.", "At ${price}, the {product} is available to order.",
        "Each {product} is priced at ${price}.", "${price} is what the {product} costs.",
    ],
    "warranty": [
        "The {product} comes with a {n}-year warranty.", "The {product} carries a {n}-year warranty.",
        "The warranty on the {product} lasts {n} years.", "A {n}-year warranty applies to the {product}.",
        "Buyers of the {product} get a {n}-year warranty.", "The {product} is guaranteed for {n} years.",
        "We guarantee the {product} for {n} years.", "Warranty for the {product}: {n} years.",
        "A {n}-year guarantee comes with each {product}.", "The {product} has a warranty of {n} years.",
    ],
    "stock": [
        "The warehouse holds {n} units of the {product}.", "We have {n} units of the {product} on hand.",
        "The {product} has {n} units in the warehouse.", "Inventory shows {n} units of the {product}.",
        "{n} units of the {product} sit in the warehouse.", "The current count for the {product} is {n} units.",
        "Our warehouse keeps {n} of the {product}.", "The {product} count in the warehouse is {n}.",
        "The warehouse has {n} of the {product} on its shelves.", "On hand: {n} units of the {product}.",
    ],
    "vacation": [
        "Employees in the {dept} department accrue {n} vacation days per year.",
        "The {dept} department gives its people {n} vacation days a year.",
        "Each {dept} employee gets {n} days of paid leave per year.",
        "People in {dept} are entitled to {n} vacation days annually.",
        "{dept} employees earn {n} days of vacation per year.", "Annual leave in the {dept} department is {n} days.",
        "The {dept} team has {n} vacation days each year.", "A year in {dept} brings {n} days of paid leave.",
        "Vacation in the {dept} department amounts to {n} days a year.",
        "Each year, {dept} employees get {n} vacation days.",
    ],
    "head": [
        "{person} leads the {dept} department.", "The head of {dept} is {person}.",
        "{person} is the director of the {dept} department.", "{person} manages the {dept} department.",
        "The {dept} department reports to {person}.", "{person} is in charge of the {dept} department.",
        "Leading the {dept} department is {person}.", "The {dept} team is managed by {person}.",
        "{person} heads {dept}.", "The director of {dept} is {person}.",
    ],
    "office": [
        "{person} works from the {city} office.", "{person} sits in the {city} office.",
        "The {city} office is home to {person}.", "{person} has a desk at the {city} office.",
        "{person} is located at the {city} office.", "You can find {person} at the {city} office.",
        "{person} reports to work at the {city} office.", "The {city} office is where {person} works.",
        "{person}'s office is in {city}.", "{person} works in {city}.",
    ],
    "event": [
        "The {event} is scheduled for {date}.", "The {event} is set for {date}.",
        "We hold the {event} on {date}.", "The date of the {event} is {date}.",
        "Mark {date} for the {event}.", "The {event} is planned for {date}.",
        "On {date} we have the {event}.", "The {event} falls on {date}.",
        "This year's {event} is on {date}.", "{date} is the day of the {event}.",
    ],
    "hotel": [
        "The nightly hotel limit in {city} is ${n}.", "Hotels in {city} may cost at most ${n} a night.",
        "In {city}, the hotel budget is ${n} per night.", "A hotel night in {city} is reimbursed up to ${n}.",
        "The maximum hotel rate for {city} is ${n} per night.", "Travellers to {city} may book hotels of up to ${n} a night.",
        "For {city}, hotel nights are limited to ${n}.", "${n} a night is the hotel limit in {city}.",
        "The hotel allowance for {city} is ${n} per night.", "A night in a {city} hotel may cost up to ${n}.",
    ],
    "meal": [
        "The daily meal allowance for {level} staff is ${n}.", "{Level} employees get ${n} a day for meals.",
        "For {level} staff, meals are covered to ${n} per day.", "Meals for {level} staff are reimbursed at ${n} a day.",
        "A {level} employee has a meal budget of ${n} per day.", "{Level} staff have ${n} per day for food.",
        "The meal budget of {level} staff is ${n} a day.", "${n} a day is the meal allowance for {level} staff.",
        "Per day, {level} staff get ${n} for meals.", "Food for {level} employees is paid to ${n} daily.",
    ],
    "procedure": [
        "To {action}, submit form {form} to the {dept} team.", "To {action}, send form {form} to the {dept} team.",
        "Form {form} is used to {action}; the {dept} team handles it.",
        "If you want to {action}, fill in form {form} for the {dept} team.",
        "The {dept} team processes form {form} for people who want to {action}.",
        "Use form {form}, sent to the {dept} team, to {action}.",
        "Whoever wants to {action} sends form {form} to the {dept} team.",
        "The way to {action} is form {form}, handed to the {dept} team.",
        "Form {form} goes to the {dept} team when you {action}.",
        "You {action} by sending form {form} to the {dept} team.",
    ],
}

# Filler: a subject times a predicate, a few hundred sentences that say nothing
# a question asks about.
_FILL_SUBJECTS = ["This page", "This policy", "This document", "The section above", "This rule",
                  "The guidance here", "This summary", "The table above", "This list", "The text below",
                  "This overview", "This notice"]
_FILL_PREDICATES = ["applies to all regions.", "was approved by the board.", "is reviewed every year.",
                    "replaces the earlier version.", "is maintained by the operations team.",
                    "may change without notice.", "is for internal use only.", "should be read with the handbook.",
                    "covers permanent and temporary staff.", "is published on the intranet.",
                    "takes effect at the start of the quarter.", "was written with the legal team.",
                    "is shared with every new hire.", "has no exceptions for managers.",
                    "is available in three languages.", "is owned by the people team.",
                    "follows the group's standards.", "was last changed in the spring.",
                    "must not be shared outside the company.", "is linked from the staff portal."]
FILLER = ["%s %s" % (s, p) for s in _FILL_SUBJECTS for p in _FILL_PREDICATES]

# Key wordings of the held-out split's sentences and filler (tables.KINDS'
# held-out templates, tables.FILLER_HELD): none appears above.
HELD_OUT_WORDS = ["list price", "covered by", "in stock", "receive", "headed by", "based in", "take place",
                  "capped", "claim", "files form", "Every ", "There are", "Anyone who", "Staff of",
                  "updated", "audit", "Contractors", "unless stated", "Printed", "out of date"]


def sentence(rng, kind, slots):
    """A training sentence stating the fact `slots` of `kind`."""
    return rng.choice(SENTENCES[kind]).format(**slots)
