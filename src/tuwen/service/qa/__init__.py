"""Product question answering: evidence from the shop's earlier Q&A, reviews and descriptions, ranked by a hybrid
of BM25 and sentence vectors with a question→answer matcher learnt on the shop's own Q&A, and yes / no / unsure.

* :mod:`~tuwen.service.qa.lexical` — BM25 with the search engine's word rules
* :mod:`~tuwen.service.qa.matcher` — the learnt question→answer matcher and its fusion weights
* :mod:`~tuwen.service.qa.yesno` — prior, answer polarity and evidence combiner; "unsure" band
* :mod:`~tuwen.service.qa.knowledge` — the evidence by product, sentence vectors by text
* :mod:`~tuwen.service.qa.splits` — listing groups (variants share Q&A) and seeded hash splits
* :mod:`~tuwen.service.qa.answerer` — training, saving, loading and answering
"""

from tuwen.service.qa.answerer import Answerer, answerer_folder, check_question, load_answerer, train_answerer

__all__ = ["Answerer", "answerer_folder", "check_question", "load_answerer", "train_answerer"]
