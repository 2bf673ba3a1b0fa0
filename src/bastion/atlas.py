"""MITRE ATLAS techniques Bastion's findings cite, by name (``Finding.techniques`` holds ids).

Ids and names are ATLAS's facts (https://atlas.mitre.org); one constant per technique, so a
typo is a NameError and every id a finding can carry is listed here, where a test checks it
against ATLAS's published data. ``threats`` will hold the full table::

    >>> from bastion import atlas
    >>> atlas.POISON_TRAINING_DATA, atlas.NAMES[atlas.POISON_TRAINING_DATA]
    ('AML.T0020', 'Poison Training Data')
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CRAFT_ADVERSARIAL_DATA",
    "CREATE_PROXY_MODEL",
    "EVADE_MODEL",
    "EXTRACT_MODEL",
    "INFER_TRAINING_DATA_MEMBERSHIP",
    "MANIPULATE_MODEL",
    "NAMES",
    "POISON_TRAINING_DATA",
    "SUPPLY_CHAIN_COMPROMISE",
    "SUPPLY_CHAIN_MODEL",
    "UNSAFE_ARTIFACTS",
]

SUPPLY_CHAIN_COMPROMISE: Final = "AML.T0010"
SUPPLY_CHAIN_MODEL: Final = "AML.T0010.003"
UNSAFE_ARTIFACTS: Final = "AML.T0011.000"
MANIPULATE_MODEL: Final = "AML.T0018"
POISON_TRAINING_DATA: Final = "AML.T0020"
EVADE_MODEL: Final = "AML.T0015"
CRAFT_ADVERSARIAL_DATA: Final = "AML.T0043"
INFER_TRAINING_DATA_MEMBERSHIP: Final = "AML.T0024.000"
EXTRACT_MODEL: Final = "AML.T0024.002"
CREATE_PROXY_MODEL: Final = "AML.T0005"

NAMES: Final[dict[str, str]] = {
    SUPPLY_CHAIN_COMPROMISE: "AI Supply Chain Compromise",
    SUPPLY_CHAIN_MODEL: "Model",  # a sub-technique of AI Supply Chain Compromise
    UNSAFE_ARTIFACTS: "Unsafe AI Artifacts",  # of User Execution
    MANIPULATE_MODEL: "Manipulate AI Model",
    POISON_TRAINING_DATA: "Poison Training Data",
    EVADE_MODEL: "Evade AI Model",
    CRAFT_ADVERSARIAL_DATA: "Craft Adversarial Data",
    INFER_TRAINING_DATA_MEMBERSHIP: "Infer Training Data Membership",  # of Exfiltration via
    # AI Inference API
    EXTRACT_MODEL: "Extract AI Model",  # of Exfiltration via AI Inference API
    CREATE_PROXY_MODEL: "Create Proxy AI Model",
}
"""Each cited technique's ATLAS name."""
