"""gensim, spacy and nltk: word vectors and topic models, spaCy pipelines and docs, NLTK
classifiers and taggers trained on a few sentences."""

from __future__ import annotations

from typing import Any

from . import Zoo, recipe

P245 = (2, 4, 5)
TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a lazy dog sleeps in the warm sun",
    "the fox runs through the quiet forest",
    "birds sing in the forest at dawn",
    "the dog chases the fox across the field",
    "sun and rain make the field green",
]


def _sentences() -> list[list[str]]:
    return [line.split() for line in TEXT]


# gensim -----------------------------------------------------------------------------------------


@recipe("gensim")
def gensim_word2vec(zoo: Zoo) -> None:
    from gensim.models import Word2Vec

    model = Word2Vec(_sentences(), vector_size=8, window=2, min_count=1, workers=1, seed=0,
                     epochs=3)
    zoo.save("word2vec.model", "model.save", lambda p: model.save(str(p)))
    zoo.save("vectors.kv", "KeyedVectors.save", lambda p: model.wv.save(str(p)))
    zoo.save("vectors.txt", "KeyedVectors.save_word2vec_format",
             lambda p: model.wv.save_word2vec_format(str(p)))
    zoo.save("vectors.bin", "KeyedVectors.save_word2vec_format",
             lambda p: model.wv.save_word2vec_format(str(p), binary=True))
    zoo.pickle("word2vec", model)


@recipe("gensim")
def gensim_doc2vec_fasttext(zoo: Zoo) -> None:
    from gensim.models import Doc2Vec, FastText
    from gensim.models.doc2vec import TaggedDocument

    docs = [TaggedDocument(words, [i]) for i, words in enumerate(_sentences())]
    doc2vec = Doc2Vec(docs, vector_size=8, min_count=1, workers=1, seed=0, epochs=3)
    zoo.save("doc2vec.model", "model.save", lambda p: doc2vec.save(str(p)))
    fasttext = FastText(_sentences(), vector_size=8, min_count=1, workers=1, seed=0, epochs=2,
                        bucket=64)
    zoo.save("fasttext.model", "model.save", lambda p: fasttext.save(str(p)))


@recipe("gensim")
def gensim_topic_models(zoo: Zoo) -> None:
    from gensim import corpora
    from gensim.models import LdaModel, LsiModel, TfidfModel

    dictionary = corpora.Dictionary(_sentences())
    corpus = [dictionary.doc2bow(words) for words in _sentences()]
    lda = LdaModel(corpus, id2word=dictionary, num_topics=2, passes=1, random_state=0)
    zoo.save_dir("lda", "model.save", lambda d: lda.save(str(d / "lda.model")))
    lsi = LsiModel(corpus, id2word=dictionary, num_topics=2)
    zoo.save_dir("lsi", "model.save", lambda d: lsi.save(str(d / "lsi.model")))
    tfidf = TfidfModel(corpus)
    zoo.save("tfidf.model", "model.save", lambda p: tfidf.save(str(p)))
    zoo.save("dictionary.dict", "Dictionary.save", lambda p: dictionary.save(str(p)))
    zoo.save_dir("corpus_mm", "MmCorpus.serialize",
                 lambda d: corpora.MmCorpus.serialize(str(d / "corpus.mm"), corpus))


@recipe("gensim")
def gensim_phrases(zoo: Zoo) -> None:
    from gensim.models.phrases import Phrases

    phrases = Phrases(_sentences() * 3, min_count=1, threshold=0.1)
    zoo.save("phrases.model", "model.save", lambda p: phrases.save(str(p)))
    zoo.save("phrases_frozen.model", "model.save", lambda p: phrases.freeze().save(str(p)))


# spacy ------------------------------------------------------------------------------------------


def _nlp_with_pipes() -> Any:
    import spacy
    from spacy.training import Example

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler")
    bow = {"@architectures": "spacy.TextCatBOW.v3", "exclusive_classes": False, "ngram_size": 1,
           "no_output_layer": False, "length": 1024}
    textcat = nlp.add_pipe("textcat_multilabel", config={"model": bow})
    textcat.add_label("ANIMALS")
    textcat.add_label("WEATHER")
    def cats(line: str) -> dict[str, float]:
        return {"ANIMALS": float("dog" in line or "fox" in line), "WEATHER": float("sun" in line)}

    examples = [Example.from_dict(nlp.make_doc(line), {"cats": cats(line)}) for line in TEXT]
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    ruler.add_patterns([{"label": "ANIMAL", "pattern": word} for word in ("fox", "dog")])
    return nlp


@recipe("spacy")
def spacy_blank_to_disk(zoo: Zoo) -> None:
    import spacy

    nlp = spacy.blank("en")
    zoo.save_dir("blank_en", "nlp.to_disk", nlp.to_disk)
    zoo.save("blank_en.bytes", "nlp.to_bytes", lambda p: p.write_bytes(nlp.to_bytes()))


@recipe("spacy")
def spacy_pipeline_to_disk(zoo: Zoo) -> None:
    nlp = _nlp_with_pipes()
    zoo.save_dir("textcat_pipeline", "nlp.to_disk", nlp.to_disk)


@recipe("spacy")
def spacy_docs(zoo: Zoo) -> None:
    from spacy.tokens import DocBin

    nlp = _nlp_with_pipes()
    docs = list(nlp.pipe(TEXT))
    zoo.pickle("doc", docs[0], P245)
    zoo.pickle("docs", docs)
    zoo.save("docs.spacy", "DocBin.to_disk", DocBin(docs=docs, store_user_data=True).to_disk)
    zoo.save("doc.bytes", "doc.to_bytes", lambda p: p.write_bytes(docs[0].to_bytes()))


@recipe("spacy")
def spacy_pickled_pipeline(zoo: Zoo) -> None:
    import spacy

    zoo.pickle("blank_nlp", spacy.blank("en"))
    zoo.save_dir("vocab", "vocab.to_disk", spacy.blank("en").vocab.to_disk)


# nltk -------------------------------------------------------------------------------------------


def _featuresets() -> list[tuple[dict[str, Any], str]]:
    def features(word: str) -> dict[str, Any]:
        return {"last": word[-1], "first": word[0], "length": len(word)}

    names = [("anna", "f"), ("maria", "f"), ("julia", "f"), ("emma", "f"), ("sofia", "f"),
             ("john", "m"), ("peter", "m"), ("mark", "m"), ("tom", "m"), ("oscar", "m")]
    return [(features(name), label) for name, label in names]


def _tagged() -> list[list[tuple[str, str]]]:
    tags = {"the": "DT", "a": "DT", "and": "CC", "in": "IN", "at": "IN", "over": "IN",
            "through": "IN", "across": "IN", "make": "VB"}
    return [[(w, tags.get(w, "VBZ" if w.endswith("s") else "NN")) for w in s]
            for s in _sentences()]


@recipe("nltk")
def nltk_classifiers(zoo: Zoo) -> None:
    from nltk.classify import DecisionTreeClassifier, MaxentClassifier, NaiveBayesClassifier

    train = _featuresets()
    zoo.pickle("naive_bayes", NaiveBayesClassifier.train(train), P245)
    zoo.pickle("decision_tree", DecisionTreeClassifier.train(train))
    zoo.pickle("maxent", MaxentClassifier.train(train, max_iter=3, trace=0))


@recipe("nltk")
def nltk_taggers(zoo: Zoo) -> None:
    from nltk.tag import BigramTagger, DefaultTagger, PerceptronTagger, RegexpTagger, UnigramTagger

    tagged = _tagged()
    default = DefaultTagger("NN")
    unigram = UnigramTagger(tagged, backoff=default)
    zoo.pickle("unigram_tagger", unigram, P245)
    zoo.pickle("bigram_tagger", BigramTagger(tagged, backoff=unigram))
    zoo.pickle("regexp_tagger", RegexpTagger([(r".*ing$", "VBG"), (r".*s$", "NNS"), (r".*", "NN")]))
    perceptron = PerceptronTagger(load=False)
    perceptron.train(tagged, nr_iter=2)
    zoo.pickle("perceptron_tagger", perceptron)


@recipe("nltk")
def nltk_punkt_and_probability(zoo: Zoo) -> None:
    from nltk import ConditionalFreqDist, FreqDist, Tree
    from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTrainer

    trainer = PunktTrainer()
    trainer.train(" ".join(f"{line.capitalize()}. Dr. Smith agrees." for line in TEXT),
                  finalize=True)
    zoo.pickle("punkt_tokenizer", PunktSentenceTokenizer(trainer.get_params()), P245)
    words = [w for s in _sentences() for w in s]
    zoo.pickle("freqdist", FreqDist(words))
    zoo.pickle("conditional_freqdist", ConditionalFreqDist((len(w), w) for w in words))
    zoo.pickle("tree", Tree.fromstring("(S (NP the fox) (VP jumps (PP over (NP the dog))))"))


@recipe("nltk")
def nltk_language_model(zoo: Zoo) -> None:
    from nltk.lm import MLE, Laplace
    from nltk.lm.preprocessing import padded_everygram_pipeline

    for name, cls in (("mle", MLE), ("laplace", Laplace)):
        train, vocab = padded_everygram_pipeline(2, _sentences())
        model = cls(2)
        model.fit(train, vocab)
        zoo.pickle(f"{name}_bigram_lm", model)
