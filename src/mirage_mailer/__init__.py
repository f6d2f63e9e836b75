"""mirage-mailer: newsletters for EU-funded projects, with the funding disclaimer enforced."""

__version__ = "0.2.0"
