"""Human evaluation: blind pairwise rating of two systems' replies by people, and what their ratings say.

One concept per module: ``pairs`` (reading and making pair files), ``store`` (the SQLite store of raters, sessions and
judgements), ``app`` (the rating web app), ``report`` (preference shares, inter-rater agreement, judge–human agreement),
``cli`` (the ``mmrl rate`` commands). A round: ``mmrl rate make-pairs`` → ``mmrl rate add-rater`` → ``mmrl rate serve``
→ ``mmrl rate report`` (README, "Human evaluation").
"""

#: What a rater judges on every pair: the seven trust criteria (``mmrl.labels.TRUST_CRITERIA``), then overall.
from mmrl.labels import TRUST_CRITERIA

QUESTIONS: tuple[str, ...] = (*TRUST_CRITERIA, "overall")

__all__ = ["QUESTIONS"]
