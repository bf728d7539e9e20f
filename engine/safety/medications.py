"""Medication statements: every sentence naming a drug or a dose is flagged for review.

What it catches: a drug from a curated list (generic names common in
low-resource settings and drug classes such as "antibiotics"), a dose (mg,
mcg, g, mL, units, IU, mg/kg), a frequency (bd, tds, qds, prn, stat, "twice
daily", "every 6 hours") or a route (IV, IM, PO, SC, "orally", "nebulised").
Each such sentence gets one ``medication`` flag listing what was found; the
text itself is not changed.

What it does not catch: brand names outside the list, misspelt drug names,
and doses written in words ("five hundred milligrams").
"""

from __future__ import annotations

import re

from engine.safety.sentences import split_sentences
from engine.schema import SafetyFlag

DRUG_NAMES = frozenset(
    """
    paracetamol acetaminophen ibuprofen aspirin diclofenac naproxen amoxicillin amoxycillin co-amoxiclav
    augmentin ampicillin flucloxacillin penicillin benzylpenicillin phenoxymethylpenicillin ceftriaxone
    cefotaxime cefuroxime cefalexin cephalexin cefixime azithromycin clarithromycin erythromycin
    doxycycline ciprofloxacin levofloxacin metronidazole gentamicin vancomycin piperacillin tazobactam
    tazocin meropenem trimethoprim nitrofurantoin co-trimoxazole cotrimoxazole clindamycin artemether
    lumefantrine artesunate quinine chloroquine primaquine isoniazid rifampicin rifampin pyrazinamide
    ethambutol salbutamol albuterol ipratropium budesonide beclometasone fluticasone montelukast
    prednisolone prednisone hydrocortisone dexamethasone methylprednisolone adrenaline epinephrine
    noradrenaline norepinephrine metformin insulin gliclazide glibenclamide dextrose morphine codeine
    tramadol fentanyl oxycodone naloxone ondansetron metoclopramide omeprazole lansoprazole pantoprazole
    ranitidine furosemide frusemide bumetanide spironolactone ramipril lisinopril enalapril amlodipine
    bisoprolol atenolol metoprolol propranolol digoxin amiodarone warfarin heparin enoxaparin apixaban
    rivaroxaban clopidogrel atorvastatin simvastatin levothyroxine lorazepam diazepam midazolam
    haloperidol phenytoin levetiracetam phenobarbital carbamazepine valproate chlorphenamine cetirizine
    loratadine hydroxyzine betamethasone clobetasol mupirocin permethrin ivermectin albendazole
    mebendazole aciclovir acyclovir valaciclovir oseltamivir fluconazole clotrimazole terbinafine
    miconazole nystatin tenofovir lamivudine dolutegravir zidovudine nevirapine efavirenz
    magnesium potassium saline hartmann's ors zinc ferrous folic thiamine glucagon nitroglycerin gtn
    tranexamic oxytocin misoprostol methotrexate allopurinol colchicine lidocaine lignocaine ketamine
    propofol antibiotic antibiotics antipyretic antipyretics analgesic analgesics analgesia antimalarial
    antimalarials steroid steroids corticosteroid corticosteroids bronchodilator bronchodilators
    nebuliser nebulizer nebulised nebulized anticoagulant anticoagulants anticoagulation antiviral
    antivirals antifungal antifungals antihistamine antihistamines opioid opioids diuretic diuretics
    antiemetic antiemetics inhaler inhalers
    """.split()
)
_DRUG_RE = re.compile(
    r"(?<![\w-])(?:"
    + "|".join(re.escape(d) for d in sorted(DRUG_NAMES, key=len, reverse=True))
    + r")(?![\w-])",
    re.IGNORECASE,
)
_DOSE_RE = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?\s*(?:-\s*\d+(?:\.\d+)?\s*)?"
    r"(?:mg/kg(?:/(?:day|dose|h|hr))?|mcg/kg(?:/min)?|micrograms?/kg|ml/kg(?:/h)?|mg|mcg|µg|ug|micrograms?|"
    r"milligrams?|grams?|g(?!/d?l)|ml|millilitres?|milliliters?|units?|iu|mmol(?!/l))(?![\w])",
    re.IGNORECASE,
)
_FREQ_RE = re.compile(
    r"\b(?:once|twice|three\s+times|four\s+times|1x|2x|3x|4x)\s+(?:a\s+|per\s+)?(?:daily|day)\b|"
    r"\bevery\s+\d+\s*(?:hours?|hrs?|h)\b|\bq\d+h\b|\b(?:od|bd|bid|tds|tid|qds|qid|prn|stat|nocte|mane|"
    r"qhs|sos)\b|\bas\s+required\b|\bas\s+needed\b",
    re.IGNORECASE,
)
_ROUTE_RE = re.compile(
    r"\b(?:IV|IM|PO|SC|SL|NG|IO)\b|\b(?:intravenous(?:ly)?|intramuscular(?:ly)?|subcutaneous(?:ly)?|"
    r"orally|by\s+mouth|per\s+os|sublingual(?:ly)?|nebuli[sz]ed|inhaled|topical(?:ly)?)\b"
)


def _medication_terms(sentence: str) -> list[str]:
    terms: list[str] = []
    for label, rx in (("drug", _DRUG_RE), ("dose", _DOSE_RE), ("frequency", _FREQ_RE), ("route", _ROUTE_RE)):
        for m in rx.finditer(sentence):
            terms.append(f"{label}: {m.group().strip()}")
    return terms


def flag_medications(text: str) -> list[SafetyFlag]:
    """One `medication` flag per sentence that names a drug, dose, frequency or route."""
    flags: list[SafetyFlag] = []
    for sentence in split_sentences(text or ""):
        terms = _medication_terms(sentence)
        if terms:
            flags.append(
                SafetyFlag(
                    kind="medication",
                    text=sentence,
                    detail="Medication or dose statement; check against local guidance before acting ("
                    + "; ".join(dict.fromkeys(terms))
                    + ")",
                )
            )
    return flags
