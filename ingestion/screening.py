"""Identifier screening of coded transcript units (consent rule 4), in DuckDB.

Every unit's text is checked, set-wise, against every identifier value held for
any participant, against patterns of direct identifiers, and for personal names
that are not registered pseudonyms or staff codes. A unit that trips a rule is
held back: its unit_id and a reason code go to ``identified.unit_holds``
(replaced whole on each run, so a participant who joins later is checked
against every earlier unit too). Reasons never repeat the identifier. Runs
offline: no models, no downloads.

Rules, by reason code:

* ``held_last_name``: a surname held for a participant, as a whole word in any
  case (a surname that is also a common English word, e.g. Long or Brown: only
  capitalised mid-sentence or beside a first name). Each part of a
  double-barrelled name counts; the whole of a multi-word name counts too.
* ``held_first_name``: a held first name, capitalised (one that is also a common
  word, e.g. Hope, Grace, May, Bill: only capitalised mid-sentence, or beside a
  surname; a month name after "in", "since", ... or before a number is a month).
* ``held_phone``, ``held_email``, ``held_address``, ``held_dob``, ``held_zip``,
  ``held_identifier``: the other identifier fields, in their common written
  forms (a phone by its digits, with or without area code; an e-mail also
  spoken, "name dot name at host dot org"; an address with or without the
  street type abbreviated, or by house number and street name; a date of birth
  in any full-date form; any other identifier field as a whole value).
* ``pattern_*``: phone numbers, e-mail addresses, social-security-style
  numbers, street addresses and full calendar dates of anybody.
* ``unregistered_name``: a capitalised personal name that is not a registered
  pseudonym, a staff code or a held value: a first name of the name list (see
  :func:`first_names`), or any capitalised word after a personal title or a kin
  word (Dr. Patel, Officer Ramirez, my cousin Dre).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

# ------------------------------------------------------------------------------------------------
# identifier fields
# ------------------------------------------------------------------------------------------------
# Identifier fields by role, recognised by name (the contract's intake project uses first_name,
# last_name, dob, phone, street_address, zip, email; another project's fields are recognised by the
# same stems, else by the shape of their values, else matched as whole values).
ROLE_PATTERNS = (
    ("email", r"e_?mail"),
    ("phone", r"phone|tel|mobile|cell|fax"),
    ("dob", r"dob|birth|bday"),
    ("zip", r"zip|postal|postcode"),
    ("address", r"addr|street"),
    ("last", r"last|surname|lname|family_name|maiden"),
    ("first", r"first|fname|given|nick|middle|alias|preferred|name"),
)
NAME_FIELDS_LAST = ("last_name",)
NAME_FIELDS_FIRST = ("first_name",)
# Name particles are not matched on their own (the whole multi-word name still is).
PARTICLES = frozenset("de la le del della der den van von da di du dos das st ste mc mac bin ibn al el y".split())

# ------------------------------------------------------------------------------------------------
# words
# ------------------------------------------------------------------------------------------------
MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
               "october", "november", "december")
# First names that are also everyday English words: never a name on their own at the start of a
# sentence or in lower case (I hope, in May, a grace period, the bill, Will you...).
COMMON_WORD_NAMES = frozenset((
    "hope", "grace", "may", "bill", "faith", "joy", "june", "april", "august", "will", "mark", "rose", "sunny",
    "summer", "autumn", "dawn", "iris", "ivy", "lily", "daisy", "ruby", "pearl", "amber", "crystal",
    "destiny", "honor", "patience", "charity", "sky", "river", "rich", "frank", "gene", "pat", "sue",
    "don", "ray", "art", "bob", "jack", "jean", "sandy", "robin", "chase", "hunter", "king", "guy",
    "penny", "holly", "heather", "hazel", "olive", "violet", "ginger", "candy", "brandy", "misty",
    "precious", "angel", "miles", "drew", "grant", "dean", "earl", "cliff", "glen", "dale", "wade",
    "lance", "rod", "norm", "skip", "buck", "bud", "chip", "rusty", "dusty", "randy", "star", "blessing",
    "queen", "major", "justice", "harmony", "melody", "unique", "diamond", "essence", "fern", "flora",
    "opal", "jade", "ebony", "sterling", "price", "reed", "carol", "sage", "clay", "chuck", "sonny",
    "jewel", "cash", "sugar", "honey", "baby", "bunny", "lucky", "trinity", "christian", "genesis",
    "heaven", "miracle", "victory", "marshall", "mason", "hunter", "taylor", "carter", "cooper", "parker",
    "tucker", "porter", "spencer", "page", "paige", "brook", "brooke", "lane", "forest", "stone", "rocky",
    "ace", "kitty", "velvet", "tiger", "colt", "gray", "grey", "sol", "ward", "noble", "early", "young",
    "long", "black", "white", "brown", "green", "love", "strong", "little", "rice", "bell", "banks",
    "wells", "hall", "hill", "wood", "cook", "sharp", "price", "kin", "sly", "teddy", "dot", "mo",
))
# Names that are also places or agencies in this register (Dallas, Jordan, Charlotte, Virginia,
# Jackson Street...): a name only beside a surname, after a title or kin word, or after "named".
CUE_ONLY_NAMES = frozenset((
    *MONTH_NAMES,
    "austin", "dallas", "houston", "georgia", "virginia", "madison", "lincoln", "jackson", "washington",
    "phoenix", "paris", "chelsea", "brooklyn", "sierra", "dakota", "savannah", "carolina", "israel", "kent",
    "sydney", "denver", "cleveland", "orlando", "charlotte", "augusta", "columbus", "camden", "troy", "salem",
    "marion", "warren", "lafayette", "aurora", "jordan", "kenya", "asia", "india", "china", "alexandria",
    "florence", "regina", "trenton", "tyler", "raleigh", "shelby", "hampton", "chester", "douglas", "clinton",
    "franklin", "hamilton", "jefferson", "kennedy", "monroe", "montgomery", "harrison", "wilson", "nelson",
    "carlton", "milton", "lamar", "lorain", "laurel", "easton", "preston", "vernon", "mercedes", "jesus",
    "al", "ed", "jo", "bo", "ty", "cj", "dj", "jj", "tj", "lee", "mercy",
))
# Words that never count as a surname beside a first name, nor as a name after a title.
NOT_SURNAMES = frozenset("""
i im i'm ive i've id i'd ill i'll the a an and but so or nor if when then than that this these those there
here what why how who whom whose which where yes yeah yep no nope okay ok well um uh oh ah like just my me
mine he him his she her hers they them their we us our you your it its is was are were be been am do did
does have has had not to of in on at by for from with about into over after before since until til till
monday tuesday wednesday thursday friday saturday sunday christmas thanksgiving easter halloween
house center centre clinic hospital street avenue ave road rd boulevard blvd lane ln drive dr court ct way
place pl park memorial church school high elementary middle college university county city village
apartments apts apartment homes home towers tower plaza mall station program programs recovery services
service ministries ministry mission shelter detox treatment health medical community square terrace circle
heights gardens manor market store hall library academy institute foundation jail prison correctional
department dept office bridge tunnel airport hotel motel inn lodge anonymous family drug day night project
projects unit ward floor building room bus line route transit authority housing court's group groups
meeting meetings club team center's clinic's outpatient inpatient residential intensive
black white brown latino latina latinx hispanic asian african american native indian mexican dominican
haitian jamaican irish italian polish korean chinese vietnamese caucasian
god jesus christ lord allah bible christian catholic baptist muslim methodist
medicaid medicare snap wic ssi ssdi suboxone methadone narcan vivitrol ged
north south east west northeast northwest southeast southwest
""".split())
# Personal titles and kin words: the capitalised word after one is a person's name.
TITLES = frozenset("""
mr mrs ms mx miss dr doctor officer judge nurse coach pastor reverend rev father deacon detective det
sergeant sgt lieutenant lt captain capt professor prof sister brother aunt auntie uncle cousin grandma
granny grandmother grandpa grandfather mom mother mama dad daddy papa son daughter wife husband girlfriend
boyfriend fiance fiancé fiancee fiancée friend buddy homie homeboy roommate neighbor neighbour sponsor
counselor counsellor therapist caseworker lawyer attorney ex niece nephew stepdad stepmom stepfather
stepmother stepson stepdaughter sis bro cuz coworker boss sponsee named nicknamed
""".split())
# Honorifics that are also ordinary verbs or nouns: a title only when capitalised (I miss Baltimore).
TITLES_CAPITALISED_ONLY = frozenset(("miss", "ex", "boss", "son"))
# Place prefixes: a first name after one is a place (San Antonio, St. Joseph's, Fort Washington).
PLACE_PREFIXES = frozenset("st saint san santa fort ft mount mt lake port los las el la".split())
# Abbreviations whose full stop does not end a sentence.
ABBREVIATIONS = frozenset("mr mrs ms mx dr st mt ft jr sr rev det sgt lt capt prof vs etc no apt ave blvd rd ln".split())
# Shops named for a person, in the possessive (I work at Wendy's).
BRAND_POSSESSIVES = frozenset(("wendy", "denny", "dillard", "kohl", "macy", "arby", "carl", "hardee", "wendys"))
# Courts that are institutions, not street addresses.
COURT_NAMES = r"(?i)\b(?:drug|family|juvenile|mental\s+health|treatment|superior|district|circuit|county|municipal|traffic|housing|criminal|federal|city|supreme|recovery|veterans|dui|night|night's)\s+(?:court|ct)\b"

# A compact list of US first names (female, male, and common nicknames), for when no maintained
# first-name package is installed (see :func:`first_names`). Lower case, space separated.
_FIRST_NAMES = """
aaliyah abby abigail ada adela adriana adrienne agnes aileen aisha alana alberta alejandra alexa alexandra
alexis alexus alice alicia alisha alison allison alma alondra alyssa amanda amani amari amelia amina amy ana
anastasia andrea angela angelica angelina angie anita ann anna annabelle anne annette annie antoinette antonia
araceli arielle arlene ashanti ashlee ashley ayanna ava beatrice becky belinda bella benita bernadette bernice
bertha beth bethany betsy betty beulah beverly bianca billie blanca bonita bonnie brandi brandie brenda brianna
bridget brittany brittney caitlin callie camila camille candace candice cara carina carla carly carmen carole
caroline carolyn carrie cassandra cassidy catherine cathy cecelia cecilia celeste celia chandra chanel charlene
chasity cheri cherie cheryl cheyenne chloe christa christie christina christine christy ciara cindy claire clara
clarissa claudia colleen connie constance cora corinne courtney cynthia dana danielle daphne darla darlene
deanna debbie deborah debra deirdre delia della delores denise desiree diana diane dianne dina dixie dolores
dominique donna dora doreen doris dorothy edith edna eileen elaine eleanor elena elisa elisabeth eliza elizabeth
ella ellen eloise elsa elsie elvira emily emma erica erika erin esmeralda esperanza estella estelle esther ethel
eunice eva evangeline evelyn fatima felicia florence frances francesca frankie gabriela gabriella gabrielle
gail genevieve geraldine gertrude gina giselle gladys glenda gloria gracie gretchen guadalupe gwen gwendolyn
hailey haley hannah harriet hattie heidi helen helena henrietta hilda ida imani imelda ines ingrid irene irma
isabel isabella jackie jacqueline jada jaime jamie jamila janae jane janelle janet janice janie janine janiya
jasmine jazmin jeanette jeanne jeannie jenna jennie jennifer jenny jessica jessie jill jillian joan joann joanna
joanne jocelyn jodi jody johanna jolene josefina josephine joyce juana juanita judith judy julia julie juliana
juliet justine kara karen kari karina karla kate katelyn katherine kathleen kathryn kathy katie katrina kay
kayla keisha kelly kelsey kendra keri kerry keyana kiara kim kimberly kira krista kristen kristi kristin
kristina kristy krystal lacey lakeisha lakesha lakisha lana lara lashonda latasha latisha latonya latoya
latrice laura lauren laurie laverne leah leann leila lena leona leslie leticia lila lillian lillie linda lindsay
lindsey lisa liz liza lois lola lora loretta lori lorraine louise lucia lucille lucy luisa luz lydia lynda
lynette lynn mabel mackenzie madeline mae maggie makayla mamie mandy marcia margaret margarita margie maria
mariah marian marianne maribel marie marilyn marina marisa marisol marjorie marla marlene marsha martha mary
maryann matilda maureen maxine maya megan meghan melanie melinda melissa meredith mia michele michelle mildred
mindy minnie miranda miriam molly monica monique myra myrtle nadia nadine nancy naomi natalie natasha nellie
nia nichole nicole nina nora norma octavia olga olivia paula paulette pauline peggy phyllis priscilla quiana
rachael rachel raquel rebecca rebekah renee rhonda rita roberta robyn rochelle rosa rosalie rosalind rosemary
rosie roxanne ruth sabrina sadie sally samantha sandra sara sarah sasha selena serena shakira shameka shana
shanice shaniqua shanna shannon shante shaquana shari sharon shauna shawna sheena sheila shelia shelly sherri
sherry sheryl shirley shonda silvia simone sonia sonja sonya sophia sophie stacey stacy stella stephanie susan
susie suzanne sylvia tabitha takisha tamara tameka tamia tamika tammy tania tanisha tanya tara tasha tatiana
tatyana teresa teri terri tessa thelma theresa tiana tiara tierra tiffany tina toni tonya tracey traci tracy
trina trisha tyesha ursula valerie vanessa vera verna veronica vicki vickie victoria viola vivian wanda wendy
whitney wilma winifred yasmin yesenia yolanda yvette yvonne zoe
aaron abdul abraham adam adolfo adrian ahmad ahmed alan albert alberto alejandro alex alexander alfonso alfred
alfredo ali allan allen alonzo alton alvin amir amos andre andres andrew andy angelo anthony antoine antonio
antwan antwon archie armando arnold arthur arturo aubrey barry ben benito benjamin bennie bernard bert billy
blake bobby boyd brad bradley brandon brendan brent brett brian bruce bryan bryant bryce byron caleb calvin
cameron carl carlos cary casey cecil cedric cesar chad charles charlie clarence claude clayton clifford
clifton clint clyde cody colin conrad corey cornelius cortez cory craig curtis cyrus damian damien damon dan
daniel danny dante darius darnell darrell darren darryl daryl dashawn dave david davon deandre demarcus
demetrius demond dennis derek derrick deshawn desmond devin devon devonte dewayne dexter diego dimitri dominic
dominick donald donnell donnie donovan dorian doug dre duane dustin dwayne dwight eddie edgar edmund eduardo
edward edwin efrain eli elias elijah elliot elmer emanuel emilio emmanuel enrique eric erik ernest ernesto
ernie esteban ethan eugene evan everett ezekiel ezra felipe felix fernando floyd francis francisco franklin
fred freddie frederick gabriel garrett gary gavin geoffrey george gerald gerardo gilbert gilberto glenn gordon
grady graham greg gregory guillermo gustavo hakeem harold harry harvey hassan hector henry herbert herman
homer horace howard hubert hugh hugo hussein ian ibrahim ignacio isaac isaiah ismael ivan jabari jacob jake
jalen jamal jamar jamel james jared jarvis jason javier jay jaylen jeff jeffery jeffrey jerald jeremiah jeremy
jermaine jerome jerry jesse jim jimmie jimmy joaquin joe joel joey john johnny jon jonah jonathan chris christopher jorge jose
josh joshua juan julian julio julius justin kareem karim keith kelvin ken kendall kendrick kenneth kenny
keshawn kevin khalid kirk kurt kwame kyle ladarius lamont larry lashawn laurence lavell lawrence leo leon
leonard leroy lester levi lewis lionel lloyd logan lonnie lorenzo louis lucas luis luke luther malcolm malik
manuel marc marcel marco marcos marcus mario marlon marquis marquise martin marvin mathew matt matthew maurice
max melvin micah michael miguel mike mohamed mohammed montrell monte morris moses mustafa nathan nathaniel neal
neil nicholas nick nicolas noah noel norman oliver omar omari orlando oscar otis owen pablo patrick paul pedro
percy perry pete peter phil philip phillip quentin quincy rafael ralph ramiro ramon randall randolph raphael
rashad rasheed rashid raul raymond reggie reginald rene ricardo rick rickey ricky rob robert roberto rodney
rodolfo rogelio roger roland ron ronald ronnie roosevelt ross roy ruben rudolph rudy rufus russell ryan
salvador sam samuel santiago santos saul scott sean sergio seth shane shaquille shaun shawn sheldon sidney
simon stanley stephen steve steven stuart sylvester tariq tavon terrance terrell terrence terry theodore
thomas tim timothy tito toby todd tom tommy tony travis trayvon tremaine trevor troy tyree tyrell tyrone
tyson vernon victor vincent virgil walter wayne wesley wilbur willard william willie willis xavier yusuf
zachary
bev becca bobbie cissy dede deb debbie dee deedee gus hank herb jen jess jojo kat keke lenny len lou lulu
lupe manny marty meg mel mick mickey missy nate ned nikki niki pam pancho paco pepe beto chuy memo nacho
rell sal shay stan ted tish toya trish vic vicky vinny walt wes zack
patricia pamela pam patrice barbara audrey bessie mattie patsy velma ramona richard joseph micheal mitchell
karl wallace johnnie dylan trevon nevaeh jayden jaden mya deja kiana shaniya aniyah kaylee morgan rodrigo tomas
"""

MONTHS = ("jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
          "oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_ORD_UNITS = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth"
ORDINAL_WORDS = (rf"(?:twenty|thirty)[- ]?(?:{_ORD_UNITS})|{_ORD_UNITS}|tenth|eleventh|twelfth|thirteenth|"
                 "fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth")
_DIGIT_WORDS = "zero|oh|o|one|two|three|four|five|six|seven|eight|nine"
_DAY = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|{ORDINAL_WORDS})"
_YEAR = r"(?:\d{4}|'\d{2})"
STREET_TYPES = ("street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
                "terrace|ter|parkway|pkwy|highway|hwy|circle|cir|square|sq|alley|aly|pike|row|plaza|plz|trail|trl|"
                "crescent|loop|mews|walk|expressway|expy|turnpike|tpke")
# Full calendar dates in their common written forms (also the forms a date of birth is matched in).
DATE_FORMS = (
    r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"                                     # 1985-03-07, 1985/3/7
    r"|\b\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})\b"                          # 3/7/1985, 03/07/85, 3-7-85, 7.3.1985
    rf"|\b(?:{MONTHS})\.?\s+(?:the\s+)?{_DAY},?\s+{_YEAR}"                    # March 7, 1985; Mar. 7th 1985; March seventh, '85
    rf"|\b(?:the\s+)?{_DAY}\s+(?:of\s+)?(?:{MONTHS})\.?,?\s+{_YEAR}"           # 7 March 1985; the 7th of March, 1985
    rf"|\b\d{{1,2}}-?(?:{MONTHS})-?(?:\d{{4}}|\d{{2}})\b"                       # 07-Mar-1985, 07MAR85
)
PATTERNS = {
    "pattern_ssn": r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b|(?i:\b(?:social(?:\s+security)?|ssn|ss#)\D{0,30}\b\d{9}\b)",
    "pattern_phone": (r"(?:\(\d{3}\)\s*|\b\d{3}[-.\s])\d{3}[-.\s]\d{4}\b"      # (410) 555-0147, 410.555.0147
                      r"|\b\d{3}[-.]\d{4}\b"                                      # 555-0147
                      r"|\b1[-.\s]8[0-9]{2}[-.\s][A-Z]{3}[-.\s]?[A-Z]{4}\b"      # 1-800-GOT-JUNK
                      # read out digit by digit: four-one-oh, five-five-five, two-two-nine-one
                      rf"|(?i:\b(?:{_DIGIT_WORDS})(?:[\s,.-]+(?:{_DIGIT_WORDS})){{6,}}\b)"),
    "pattern_email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
                      r"|(?i:\b[a-z0-9._-]+(?:\s+(?:dot|underscore)\s+[a-z0-9-]+)*\s+at\s+[a-z0-9-]+"
                      r"(?:\s+dot\s+[a-z0-9-]+)*\s+dot\s+(?:com|net|org|edu|gov|us|info)\b)"),
    "pattern_street_address": (
        # a house number, up to three capitalised street-name words (or an ordinal), a street type
        r"\b\d{1,6}[A-Za-z]?\s+(?:(?:[NSEW]\.?|North|South|East|West)\s+)?"
        rf"(?:(?:\p{{Lu}}[\p{{L}}'’]*\.?|\d+(?:st|nd|rd|th))\s+){{1,3}}(?i:{STREET_TYPES})\b"
        r"|(?i:\bp\.?\s?o\.?\s+box\s+\d+)"
    ),
    "pattern_full_date": f"(?i:{DATE_FORMS})",
}
REASONS = {
    "held_last_name": "the text contains a surname held for a participant",
    "held_first_name": "the text contains a first name held for a participant",
    "held_phone": "the text contains a phone number held for a participant",
    "held_email": "the text contains an e-mail address held for a participant",
    "held_address": "the text contains a street address held for a participant",
    "held_dob": "the text contains a date of birth held for a participant",
    "held_zip": "the text contains a ZIP code held for a participant",
    "held_identifier": "the text contains an identifier value held for a participant",
    "pattern_ssn": "the text contains a social-security-style number",
    "pattern_phone": "the text contains a phone number",
    "pattern_email": "the text contains an e-mail address",
    "pattern_street_address": "the text contains a street address",
    "pattern_full_date": "the text contains a full calendar date (day, month and year)",
    "unregistered_name": "the text contains a personal name that is not a registered pseudonym or staff code",
}

COMMON_ZIPF = 4.5  # kept for callers; see is_common_word
# A word at least this frequent in English, and this much more frequent in English than in the
# languages where personal names travel (names are frequent everywhere; "hope" only in English).
_EN_ZIPF = 4.0
_EN_LEAD = 0.6
_OTHER_LANGS = ("de", "fr", "es", "it", "nl", "pt", "pl", "sv", "fi", "cs")


@functools.lru_cache(maxsize=8192)
def is_common_word(token: str) -> bool:
    """A name that is also an everyday English word (long, hope, may, bill...), by wordfreq.

    wordfreq folds case, so "John" is as frequent as "hope"; what tells them apart is that a
    personal name is about as frequent in other European languages as in English, while an
    English word is not.
    """
    t = token.lower()
    if t in COMMON_WORD_NAMES:
        return True
    from wordfreq import zipf_frequency

    en = zipf_frequency(t, "en")
    if en < _EN_ZIPF:
        return False
    others = sorted((zipf_frequency(t, lang, wordlist="small") for lang in _OTHER_LANGS), reverse=True)[:3]
    return en - sum(others) / 3 >= _EN_LEAD


def _package_first_names() -> set[str]:
    """First names of a maintained package, when one is installed (Faker's en_US person provider)."""
    try:  # pragma: no cover - depends on the environment
        from faker.providers.person.en_US import Provider
    except Exception:
        return set()
    out: set[str] = set()
    for attr in ("first_names_female", "first_names_male", "first_names_nonbinary", "first_names"):
        names = getattr(Provider, attr, ()) or ()
        out.update(str(n).strip().lower() for n in names if str(n).strip().isalpha())
    return out


@functools.lru_cache(maxsize=1)
def first_names() -> dict[str, str]:
    """The first-name lexicon: lower-case name -> class.

    ``name``: a name wherever it is capitalised; ``word``: also a common English word (capitalised
    mid-sentence, or beside a surname); ``cue``: also a month, a place or an abbreviation (only
    beside a surname, or after a title, a kin word or "named").
    """
    names = set(_FIRST_NAMES.split()) | _package_first_names() | COMMON_WORD_NAMES | CUE_ONLY_NAMES
    out: dict[str, str] = {}
    for n in names:
        if n in NOT_SURNAMES and n not in CUE_ONLY_NAMES:
            continue  # Christian, Young, Black...: never a name on their own
        if n in CUE_ONLY_NAMES or len(n) <= 2:
            out[n] = "cue"
        elif n in COMMON_WORD_NAMES or is_common_word(n):
            out[n] = "word"
        else:
            out[n] = "name"
    return out


# ------------------------------------------------------------------------------------------------
# dates of birth
# ------------------------------------------------------------------------------------------------
_MONTH_NUM = {m[:3]: i for i, m in enumerate(MONTH_NAMES, 1)}
_ORD_NUM = {w: i for i, w in enumerate(("first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
                                         "twelfth thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth "
                                         "nineteenth twentieth").split(), 1)}
_ORD_NUM["thirtieth"] = 30


def _day_number(text: str) -> int | None:
    t = text.lower().replace("-", " ").strip()
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", t)
    if m:
        return int(m.group(1))
    parts = t.split()
    if len(parts) == 1:
        return _ORD_NUM.get(parts[0])
    if len(parts) == 2 and parts[0] in ("twenty", "thirty") and parts[1] in _ORD_NUM and _ORD_NUM[parts[1]] < 10:
        return (20 if parts[0] == "twenty" else 30) + _ORD_NUM[parts[1]]
    return None


def _years(text: str) -> list[int]:
    t = text.strip().lstrip("'")
    if len(t) == 4:
        return [int(t)]
    return [1900 + int(t), 2000 + int(t)]


def date_readings(text: str) -> set[str]:
    """Every ISO date a written full date can mean (3/7/85: 1985-03-07, 1985-07-03, 2085-...)."""
    s = re.sub(r"\s+", " ", text.strip().lower())
    out: set[tuple[int, int, int]] = set()
    m = re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", s)
    if m:
        out.add((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    m = re.fullmatch(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})", s)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        for y in _years(m.group(3)):
            out |= {(y, a, b), (y, b, a)}
    m = re.fullmatch(rf"({MONTHS})\.? (?:the )?(.+?),? ('?\d{{2,4}})", s)
    if m:
        d = _day_number(m.group(2))
        if d:
            out |= {(y, _MONTH_NUM[m.group(1)[:3]], d) for y in _years(m.group(3))}
    m = re.fullmatch(rf"(?:the )?(.+?) (?:of )?({MONTHS})\.?,? ('?\d{{2,4}})", s)
    if m:
        d = _day_number(m.group(1))
        if d:
            out |= {(y, _MONTH_NUM[m.group(2)[:3]], d) for y in _years(m.group(3))}
    m = re.fullmatch(rf"(\d{{1,2}})-?({MONTHS})-?(\d{{4}}|\d{{2}})", s)
    if m:
        out |= {(y, _MONTH_NUM[m.group(2)[:3]], int(m.group(1))) for y in _years(m.group(3))}
    iso = set()
    for y, mo, d in out:
        try:
            iso.add(date(y, mo, d).isoformat())
        except ValueError:
            pass
    return iso


# ------------------------------------------------------------------------------------------------
# addresses
# ------------------------------------------------------------------------------------------------
_STREET_ABBR = {"street": "st", "avenue": "ave", "road": "rd", "boulevard": "blvd", "lane": "ln", "drive": "dr",
                "court": "ct", "place": "pl", "terrace": "ter", "parkway": "pkwy", "highway": "hwy",
                "circle": "cir", "square": "sq", "alley": "aly", "north": "n", "south": "s", "east": "e",
                "west": "w", "apartment": "apt", "suite": "ste", "mount": "mt", "saint": "st", "way": "way"}
_ABBR_TO_ALT = {}
for _full, _abbr in _STREET_ABBR.items():
    _ABBR_TO_ALT.setdefault(_abbr, {_abbr}).add(_full)
    _ABBR_TO_ALT.setdefault(_full, {_abbr}).add(_full)


def _address_regexes(value: str) -> list[str]:
    """Regexes of a held street address: the line as written or abbreviated; number + street name."""
    line = re.split(r"[\n,]", value.strip())[0]
    words = re.findall(r"[A-Za-z0-9]+", line.lower())
    if len(words) < 2:
        return []

    def alt(w: str) -> str:
        forms = _ABBR_TO_ALT.get(w, {w})
        return "(?:" + "|".join(sorted(re.escape(f) for f in forms)) + r")\.?"

    sep = r"[\s.,#-]+"
    out = [r"\b" + sep.join(alt(w) for w in words) + r"\b"]
    number = words[0] if words[0][0].isdigit() else None
    rest = words[1:] if number else words
    named = [w for w in rest if w not in _ABBR_TO_ALT]
    if number and named:
        out.append(rf"\b{re.escape(number)}{sep}(?:{alt(rest[0])}{sep})?{re.escape(named[0])}\b")
    # the street alone (Larkspur Lane), unless its name is an everyday word (Main Street, Park Avenue)
    if named and rest and rest[-1] in _ABBR_TO_ALT and not any(is_common_word(w) or len(w) < 4 for w in named):
        street = [w for w in rest if not w.isdigit()]
        out.append(r"\b" + sep.join(alt(w) for w in street) + r"\b")
    return out


def _role(field_name: str, value: str) -> str:
    base = field_name.split("#")[0].lower()
    for role, pattern in ROLE_PATTERNS:
        if re.search(pattern, base):
            return role
    v = value.strip()
    if "@" in v:
        return "email"
    if date_readings(v):
        return "dob"
    if len(re.sub(r"\D", "", v)) >= 7 and not re.search(r"[A-Za-z]{2,}", v):
        return "phone"
    return "other"


# ------------------------------------------------------------------------------------------------
# the screening
# ------------------------------------------------------------------------------------------------
SCHEMA_SQL = """
create table if not exists identified.unit_holds (
    unit_id varchar not null,
    reason_code varchar not null,
    reason varchar not null,
    screened_at timestamptz not null
)
"""


@dataclass
class ScreeningReport:
    units: int
    held: int
    by_reason: dict[str, int]
    pseudonyms_that_are_real_names: int


def screen_units(conn: duckdb.DuckDBPyConnection) -> ScreeningReport:
    """Screen every held unit; replace identified.unit_holds in one transaction."""
    conn.execute(SCHEMA_SQL)
    if not conn.execute("select exists (from identified.transcript_units) or exists (from identified.pseudonyms)"
                        ).fetchone()[0]:
        # No unit to screen and no pseudonym to weigh: nothing to hold (a warehouse with no transcript yet).
        conn.execute("delete from identified.unit_holds")
        return ScreeningReport(0, 0, {}, 0)
    conn.execute("begin transaction")
    try:
        _screen(conn)
        conn.execute("commit")
    except BaseException:
        conn.execute("rollback")
        raise
    units = conn.execute("select count(distinct unit_id) from identified.transcript_units").fetchone()[0]
    held = conn.execute("select count(distinct unit_id) from identified.unit_holds").fetchone()[0]
    by_reason = dict(conn.execute(
        "select reason_code, count(distinct unit_id) from identified.unit_holds group by 1 order by 1").fetchall())
    clash = conn.execute(
        """select count(distinct p.pseudonym) from current_pseudonyms p
           where exists (select 1 from held_tokens t where t.role in ('first', 'last')
                         and (t.token = lower(trim(p.pseudonym))
                              or list_contains(regexp_split_to_array(lower(trim(p.pseudonym)), '[\\s-]+'), t.token)))"""
    ).fetchone()[0]
    return ScreeningReport(units, held, by_reason, clash)


def _register(conn: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    conn.register(f"{name}_df", frame)
    conn.execute(f"create or replace temp table {name} as select * from {name}_df")
    conn.unregister(f"{name}_df")


def _keys(words) -> pl.DataFrame:
    return pl.DataFrame({"key": sorted(set(words))}, schema={"key": pl.Utf8})


def _screen(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(
        """
        create or replace temp table current_values as
        select record_id, field, arg_max_null(value, recorded_at) as value
        from identified.identifier_values
        where kind = 'identifier'
        group by all
        having arg_max_null(value, recorded_at) is not null and trim(arg_max_null(value, recorded_at)) <> ''
        """
    )
    conn.execute(
        """
        create or replace temp table current_pseudonyms as
        select record_id, pseudonym from identified.pseudonyms
        where batch_id = (select batch_id from identified.pseudonyms order by recorded_at desc, batch_id desc limit 1)
        """
    )
    # Each held value's role (by field name, else by the shape of the value); a loop over distinct fields.
    fields = conn.execute("select distinct field, any_value(value) from current_values group by field").fetchall()
    _register(conn, "field_roles", pl.DataFrame(
        {"field": [f for f, _ in fields], "role": [_role(f, v or "") for f, v in fields]},
        schema={"field": pl.Utf8, "role": pl.Utf8}))
    conn.execute(
        """create or replace temp table held_values as
           select v.record_id, v.field, trim(v.value) as value, r.role
           from current_values v join field_roles r using (field)"""
    )

    # ---- name tokens of held names (each part of a multi-part name), lower-cased
    conn.execute(
        """
        create or replace temp table held_tokens_raw as
        select distinct lower(tok) as token, case when role = 'last' then 'last' else 'first' end as role
        from (select role, unnest(regexp_split_to_array(value, '[^\\p{L}''’]+')) as tok
              from held_values where role in ('first', 'last'))
        where length(tok) >= 2
        """
    )
    tokens = conn.execute("select token, role from held_tokens_raw").fetchall()
    _register(conn, "held_tokens", pl.DataFrame(
        {"token": [t for t, _ in tokens], "role": [r for _, r in tokens],
         "is_common": [is_common_word(t) for t, _ in tokens],
         "is_month": [t in MONTH_NAMES for t, _ in tokens],
         "is_particle": [t in PARTICLES for t, _ in tokens]},
        schema={"token": pl.Utf8, "role": pl.Utf8, "is_common": pl.Boolean, "is_month": pl.Boolean,
                "is_particle": pl.Boolean}))

    # ---- lexicons
    lex = first_names()
    _register(conn, "name_lex", pl.DataFrame({"key": list(lex), "cls": list(lex.values())},
                                             schema={"key": pl.Utf8, "cls": pl.Utf8}))
    _register(conn, "not_surnames", _keys(NOT_SURNAMES | set(MONTH_NAMES) | TITLES))
    _register(conn, "titles", _keys(TITLES))
    _register(conn, "titles_capitalised", _keys(TITLES_CAPITALISED_ONLY))
    _register(conn, "brand_possessives", _keys(BRAND_POSSESSIVES))
    _register(conn, "place_prefixes", _keys(PLACE_PREFIXES))
    _register(conn, "abbreviations", _keys(ABBREVIATIONS))
    conn.execute(
        """
        create or replace temp table exempt_names as
        -- registered pseudonyms (each word of one), and staff codes of the session log
        select distinct lower(tok) as key
        from (select unnest(regexp_split_to_array(trim(pseudonym), '[^\\p{L}\\p{N}''’]+')) as tok from current_pseudonyms)
        where tok <> ''
        union
        select distinct lower(trim(payload->>'staff_id')) from events.events
        where payload->>'staff_id' is not null
        """
    )

    # ---- the tokens of each unit (words, numbers, punctuation, line breaks) with their neighbours
    tok_re = "\\n|\\p{L}[\\p{L}\\p{M}''’]*|\\d+|[^\\s\\p{L}\\d]"
    conn.execute(
        f"""
        create or replace temp table unit_tokens as
        with texts as (select unit_id, any_value(text) as text from identified.transcript_units
                       where text is not null group by unit_id),
        t as (
            select unit_id, unnest(regexp_extract_all(text, '{tok_re}')) as tok,
                   generate_subscripts(regexp_extract_all(text, '{tok_re}'), 1) as pos
            from texts
        )
        select unit_id, pos, tok,
               lag(tok, 1) over w as p1, lag(tok, 2) over w as p2, lag(tok, 3) over w as p3,
               lead(tok, 1) over w as n1, lead(tok, 2) over w as n2
        from t
        window w as (partition by unit_id order by pos)
        """
    )
    conn.execute(
        """
        create or replace temp table words0 as
        select unit_id, pos, tok as word,
               regexp_replace(lower(tok), '[''’]s?$', '') as key,
               regexp_matches(tok, '^\\p{Lu}') and regexp_matches(tok, '\\p{Ll}') as titled,
               -- the start of a sentence, a speaker's turn, a quotation or a line
               (p1 is null or p1 in ('!', '?', ':', chr(10), '"', '“', '‘', '(', '…', '[', '-', '—', '–')
                or (p1 = '.' and (p2 is null or lower(p2) not in (select key from abbreviations)))
                or (p1 in ('”', '’', '''', ')', ']') and p2 in ('.', '!', '?'))) as sentence_start,
               -- after a personal title or kin word (Dr. Patel, my cousin Dre)
               coalesce((lower(p1) in (select key from titles)
                         and (lower(p1) not in (select key from titles_capitalised) or regexp_matches(p1, '^\\p{Lu}')))
                        or (p1 = '.' and lower(p2) in (select key from titles)), false) as after_title,
               coalesce(lower(p1) in (select key from place_prefixes)
                        or (p1 = '.' and lower(p2) in (select key from place_prefixes)), false) as after_place_prefix,
               coalesce(regexp_matches(n1, '^\\p{Lu}') and regexp_matches(n1, '\\p{Ll}')
                        and regexp_replace(lower(n1), '[''’]s?$', '') not in (select key from not_surnames), false)
                   as next_surname,
               coalesce(regexp_replace(lower(n1), '[''’]s?$', '') in (
                   'house', 'center', 'centre', 'clinic', 'hospital', 'street', 'st', 'avenue', 'ave', 'road', 'rd',
                   'boulevard', 'blvd', 'lane', 'ln', 'drive', 'court', 'way', 'place', 'park', 'memorial',
                   'church', 'school', 'high', 'elementary', 'middle', 'college', 'university', 'county', 'village',
                   'apartments', 'homes', 'towers', 'plaza', 'mall', 'station', 'program', 'recovery', 'services',
                   'ministries', 'mission', 'shelter', 'detox', 'treatment', 'health', 'medical', 'community',
                   'square', 'terrace', 'circle', 'heights', 'gardens', 'manor', 'hall', 'library', 'academy',
                   'institute', 'foundation', 'bridge', 'tunnel', 'hotel', 'motel', 'inn', 'lodge', 'period',
                   'project', 'projects', 'towers', 'court', 'jail', 'field', 'stadium', 'island', 'beach')
                        and regexp_matches(n1, '^\\p{Lu}'), false) as next_institution,
               lower(p1) as p1_low, p1, p2, n1
        from unit_tokens
        where regexp_matches(tok, '^\\p{L}')
        """
    )
    conn.execute(
        """
        create or replace temp table unit_words as
        select w.*,
               -- the previous word is itself a capitalised word mid-sentence (New Hope, Amazing Grace)
               coalesce(lag(titled) over w2 and not lag(sentence_start) over w2 and lag(pos) over w2 = pos - 1,
                        false) as prev_titled_mid,
               coalesce(lag(key) over w2, '') as prev_key,
               lag(pos) over w2 = pos - 1 as prev_adjacent,
               coalesce(lead(key) over w2, '') as next_key,
               lead(pos) over w2 = pos + 1 as next_adjacent
        from words0 w
        window w2 as (partition by unit_id order by pos)
        """
    )

    # ---- held names
    conn.execute(
        """
        create or replace temp table holds as
        select distinct w.unit_id,
               case when t.role = 'last' then 'held_last_name' else 'held_first_name' end as reason_code
        from unit_words w
        join held_tokens t on w.key = t.token and not t.is_particle
        where case
            -- a surname that is not a common word: any case
            when t.role = 'last' and not t.is_common then true
            -- a first name that is not a common word: capitalised
            when not t.is_common then w.titled or regexp_matches(w.word, '^\\p{Lu}+$')
            -- a month: only beside a surname (May Okafor), never after "in", "since"... or before a number
            when t.is_month then w.titled and coalesce(w.next_surname and w.next_adjacent, false)
            -- a name that is also a common word (Hope, Grace, May, Bill, Long): capitalised mid-sentence,
            -- or beside a surname
            -- (not part of a longer proper noun: Hope House, New Hope, Grace Church)
            else w.titled and (
                (not w.sentence_start and not w.next_institution and (not w.prev_titled_mid or w.after_title))
                or coalesce(w.next_surname and w.next_adjacent, false)
                or coalesce(w.prev_adjacent and w.prev_key in (select token from held_tokens), false))
        end
        """
    )
    # a month-named held first name used as a name mid-sentence (I told May), not as a month (in May 2019)
    conn.execute(
        """
        insert into holds
        select distinct w.unit_id, 'held_first_name'
        from unit_words w join held_tokens t on w.key = t.token and t.is_month and t.role = 'first'
        where w.titled and not w.sentence_start
          and coalesce(w.p1_low, '') not in ('in', 'since', 'until', 'till', 'til', 'by', 'last', 'next', 'this',
              'of', 'early', 'late', 'mid', 'through', 'from', 'before', 'after', 'around', 'during', 'every',
              'that', 'each', 'till', 'to', 'between', 'and', 'or', 'about', 'for', 'on', 'like', 'start', '-')
          and not coalesce(regexp_matches(w.n1, '^\\d'), false)
        """
    )
    # the whole of a multi-word held name, as a phrase (De La Cruz, Mary Ann)
    multi = conn.execute(
        """select distinct role, value from held_values
           where role in ('first', 'last') and regexp_matches(value, '\\S[\\s-]+\\S')"""
    ).fetchall()
    for role in ("first", "last"):
        phrases = sorted({r"[\s-]+".join(_re2_escape(p) for p in re.split(r"[\s-]+", v)) for r, v in multi if r == role})
        if phrases:
            conn.execute(
                f"""insert into holds select distinct unit_id, 'held_{role}_name' from identified.transcript_units
                    where regexp_matches(text, $p)""",
                {"p": r"(?i)(?:^|[^\p{L}])(?:" + "|".join(phrases) + r")(?:$|[^\p{L}])"},
            )
    # any other identifier field, as a whole value
    others = sorted({v for (v,) in conn.execute(
        """select distinct value from held_values
           where role = 'other' and length(value) >= 4 and not regexp_matches(value, '^\\d{1,4}$')"""
    ).fetchall()})
    if others:
        conn.execute(
            """insert into holds select distinct unit_id, 'held_identifier' from identified.transcript_units
               where regexp_matches(text, $p)""",
            {"p": r"(?i)(?:^|[^\p{L}\p{N}])(?:" + "|".join(_re2_escape(v) for v in others) + r")(?:$|[^\p{L}\p{N}])"},
        )

    # ---- held phones, e-mails, zips, dates of birth, addresses, other identifiers
    conn.execute(
        """
        insert into holds
        with texts as (select unit_id, any_value(text) as text from identified.transcript_units
                       where text is not null group by unit_id),
        digits as (
            select unit_id, regexp_replace(d, '[^0-9]', '', 'g') as digits
            from (select unit_id, unnest(regexp_extract_all(text, '\\(?\\d[\\d\\s().-]{5,}\\d')) as d from texts)
        ),
        held_phone as (
            select distinct regexp_replace(value, '[^0-9]', '', 'g') as digits from held_values
            where role = 'phone' and length(regexp_replace(value, '[^0-9]', '', 'g')) >= 7
        )
        -- equi-joins only (set-based at any number of participants): last 10 digits, or a 7-digit local number
        select distinct d.unit_id, 'held_phone' from digits d join held_phone h
            on length(d.digits) >= 10 and right(d.digits, 10) = right(h.digits, 10)
        union
        select distinct d.unit_id, 'held_phone' from digits d join held_phone h
            on length(d.digits) = 7 and d.digits = right(h.digits, 7)
        union
        select distinct e.unit_id, 'held_email'
        from (select unit_id, unnest(regexp_extract_all(
                  regexp_replace(regexp_replace(regexp_replace(lower(text),
                      '\\s+(?:dot|period)\\s+', '.', 'g'), '\\s+(?:at)\\s+', '@', 'g'), '\\s+underscore\\s+', '_', 'g'),
                  '[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}')) as email from texts) e
        join (select distinct lower(trim(value)) as email from held_values where role = 'email') v using (email)
        union
        select distinct z.unit_id, 'held_zip'
        from (select unit_id, unnest(regexp_extract_all(text, '\\b\\d{5}\\b')) as zip from texts) z
        join (select distinct left(trim(value), 5) as zip from held_values
              where role = 'zip' and regexp_matches(value, '^\\s*\\d{5}')) v using (zip)
        """
    )
    # dates of birth: every full date written in a unit, read as ISO dates (a loop over distinct strings)
    dob_values = [v for (v,) in conn.execute("select distinct value from held_values where role = 'dob'").fetchall()]
    held_dobs = sorted({iso for v in dob_values for iso in date_readings(v) if _unambiguous_dob(v, iso)})
    if held_dobs:
        found = [s for (s,) in conn.execute(
            """select distinct m from (select unnest(regexp_extract_all(text, $p)) as m
                                       from identified.transcript_units where text is not null)""",
            {"p": PATTERNS["pattern_full_date"]}).fetchall()]
        readings = [(s, iso) for s in found for iso in date_readings(s)]
        _register(conn, "date_readings_t", pl.DataFrame(
            {"m": [s for s, _ in readings], "iso": [i for _, i in readings]},
            schema={"m": pl.Utf8, "iso": pl.Utf8}))
        _register(conn, "held_dobs", pl.DataFrame({"iso": held_dobs}, schema={"iso": pl.Utf8}))
        conn.execute(
            """
            insert into holds
            select distinct u.unit_id, 'held_dob'
            from (select unit_id, unnest(regexp_extract_all(text, $p)) as m
                  from identified.transcript_units where text is not null) u
            join date_readings_t r using (m) join held_dobs h using (iso)
            """,
            {"p": PATTERNS["pattern_full_date"]},
        )
    # addresses: one alternation of every held address's written forms
    addresses = [v for (v,) in conn.execute("select distinct value from held_values where role = 'address'").fetchall()]
    # only addresses whose words all occur in some unit can match: a set filter keeps the regex small
    text_words = {w for (w,) in conn.execute(
        "select distinct lower(unnest(regexp_extract_all(text, '[A-Za-z0-9]+'))) from identified.transcript_units"
    ).fetchall()}
    addresses = [v for v in addresses
                 if {w for w in re.findall(r"[a-z0-9]+", re.split(r"[\n,]", v.strip().lower())[0])
                     if not w.isdigit() and w not in _ABBR_TO_ALT} & text_words]
    forms = sorted({rx for v in addresses for rx in _address_regexes(v)})
    if forms:
        conn.execute(
            """insert into holds
               select distinct unit_id, 'held_address' from identified.transcript_units
               where regexp_matches(text, $p)""",
            {"p": "(?i)(?:" + "|".join(forms) + ")"},
        )

    # ---- patterns
    for code, pattern in PATTERNS.items():
        # (a drug court is an institution, not a street: "2 Drug Court dates")
        text_expr = "regexp_replace(text, $c, ' ', 'g')" if code == "pattern_street_address" else "text"
        params = {"p": pattern, "c": COURT_NAMES} if code == "pattern_street_address" else {"p": pattern}
        conn.execute(
            f"""insert into holds
                select distinct unit_id, '{code}' from identified.transcript_units
                where regexp_matches({text_expr}, $p)""",
            params,
        )

    # ---- capitalised personal names that are not registered pseudonyms, staff codes or held values
    conn.execute(
        """
        insert into holds
        select distinct w.unit_id, 'unregistered_name'
        from unit_words w
        left join name_lex l on l.key = w.key
        where w.titled
          and w.key not in (select key from exempt_names)
          and w.key not in (select token from held_tokens)
          and not w.after_place_prefix
          and not (w.key in (select key from brand_possessives) and regexp_matches(w.word, '[''’]s$'))
          and (
              -- any capitalised word after a personal title or kin word: Dr. Patel, Officer Ramirez, my cousin Dre
              (w.after_title and w.key not in (select key from not_surnames) and length(w.key) >= 2)
              -- a first name of the list (not a place: Grady Hospital, Johnson Street)
              or (l.cls = 'name' and not w.next_institution)
              -- a first name that is also a word: capitalised mid-sentence and not part of a longer proper
              -- noun (New Hope, Hope House), or beside a surname (Bill Stevens)
              or (l.cls = 'word' and ((not w.sentence_start and not w.prev_titled_mid and not w.next_institution)
                                      or (w.next_surname and w.next_adjacent)))
              -- a month, a place: only beside a surname (June Carter)
              or (l.cls = 'cue' and w.next_surname and w.next_adjacent)
          )
        """
    )

    reasons = " ".join(f"when '{k}' then '{v}'" for k, v in REASONS.items())
    conn.execute("delete from identified.unit_holds")
    conn.execute(
        f"""insert into identified.unit_holds
            select distinct unit_id, reason_code, case reason_code {reasons} end, now() from holds"""
    )


def _unambiguous_dob(value: str, iso: str) -> bool:
    """A held DOB is read as written: ISO (REDCap date_ymd) first, else every reading."""
    v = value.strip()
    if re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", v):
        y, m, d = (int(x) for x in v.split("-"))
        try:
            return date(y, m, d).isoformat() == iso
        except ValueError:
            return False
    return True


def _re2_escape(text: str) -> str:
    """Escape a literal for RE2 (DuckDB's regex engine)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)
