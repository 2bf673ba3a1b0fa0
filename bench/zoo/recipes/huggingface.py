"""transformers, sentence-transformers and peft: tiny models built from local configs (never
fetched), their tokenizers, a Trainer checkpoint, sentence-transformer folders, LoRA adapters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import Zoo, recipe

WORDS = (
    "the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "in", "the", "park", "and",
    "birds", "sang", "hello", "world", "how", "are", "you", "today", "good", "morning",
)
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)


def tiny_configs() -> dict[str, Any]:
    """One tiny config per architecture family: a few kB of weights each."""
    import transformers as tf

    vocab = len(SPECIAL) + len(set(WORDS))
    small = {"vocab_size": vocab, "hidden_size": 16, "num_hidden_layers": 1,
             "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32}
    return {
        "bert": (tf.BertForSequenceClassification, tf.BertConfig(**small, num_labels=3)),
        "roberta": (tf.RobertaForMaskedLM, tf.RobertaConfig(**small, pad_token_id=0)),
        "distilbert": (tf.DistilBertModel, tf.DistilBertConfig(
            vocab_size=vocab, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
            max_position_embeddings=32)),
        "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(vocab_size=vocab, n_positions=32, n_embd=16,
                                                    n_layer=1, n_head=2)),
        "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(**small, num_key_value_heads=1)),
        "t5": (tf.T5ForConditionalGeneration, tf.T5Config(
            vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
            decoder_start_token_id=0)),
        "vit": (tf.ViTForImageClassification, tf.ViTConfig(
            image_size=16, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, num_labels=2)),
    }


def tiny_model(name: str) -> Any:
    import torch

    cls, config = tiny_configs()[name]
    torch.manual_seed(0)
    return cls(config).eval()


def tiny_tokenizer() -> Any:
    """A WordLevel tokenizer built from WORDS, wrapped as a fast tokenizer with a chat
    template."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIAL, *sorted(set(WORDS))])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=32,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_bert_folder(zoo: Zoo) -> Path:
    """A tiny BertModel and its tokenizer in scratch, for libraries that load from a folder."""
    import transformers as tf

    folder = zoo.scratch / "tiny-bert"
    if not (folder / "config.json").is_file():
        _, config = tiny_configs()["bert"]
        tf.BertModel(config).save_pretrained(folder)
        tiny_tokenizer().save_pretrained(folder)
    return folder


# transformers -----------------------------------------------------------------------------------


@recipe("transformers")
def hf_save_pretrained_safetensors(zoo: Zoo) -> None:
    for name in tiny_configs():
        model = tiny_model(name)
        zoo.save_dir(f"{name}_safetensors", "model.save_pretrained", model.save_pretrained)


@recipe("transformers")
def hf_pytorch_model_bin(zoo: Zoo) -> None:
    """pytorch_model.bin as transformers wrote it before v5 (``safe_serialization=False``):
    ``torch.save(model.state_dict())`` beside config.json. v5's save_pretrained writes
    safetensors only."""
    import torch

    for name in ("bert", "gpt2", "t5", "llama"):
        model = tiny_model(name)
        folder = f"{name}_bin"
        zoo.save_dir(folder, "config.save_pretrained", model.config.save_pretrained)
        zoo.save(f"{folder}/pytorch_model.bin", "torch.save",
                 lambda p, m=model: torch.save(m.state_dict(), p))


@recipe("transformers")
def hf_whole_model_and_config(zoo: Zoo) -> None:
    from transformers import GenerationConfig

    zoo.torch("bert_whole_model.pt", tiny_model("bert"))
    zoo.pickle("gpt2_config", tiny_configs()["gpt2"][1])
    generation = GenerationConfig(max_new_tokens=8, do_sample=True, top_k=5, temperature=0.7)
    zoo.save_dir("generation_config", "GenerationConfig.save_pretrained",
                 generation.save_pretrained)


@recipe("transformers")
def hf_tokenizer(zoo: Zoo) -> None:
    tokenizer = tiny_tokenizer()
    zoo.save_dir("tokenizer", "tokenizer.save_pretrained", tokenizer.save_pretrained)
    zoo.save("tokenizer_core.json", "Tokenizer.save",
             lambda p: tokenizer.backend_tokenizer.save(str(p)))
    zoo.pickle("tokenizer_fast", tokenizer)
    batch = tokenizer(["the cat sat", "hello world"], padding=True, return_tensors="pt")
    zoo.torch("encodings.pt", batch)
    zoo.pickle("batch_encoding", batch)


@recipe("transformers")
def hf_bpe_tokenizer(zoo: Zoo) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    core.train_from_iterator([" ".join(WORDS)] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    zoo.save_dir("bpe_tokenizer", "tokenizer.save_pretrained", tokenizer.save_pretrained)


class _Tokens:
    """A map-style dataset of tokenized sentences with labels, for the Trainer."""

    def __init__(self, tokenizer: Any) -> None:
        sentences = [" ".join(WORDS[i : i + 5]) for i in range(0, 20, 2)]
        self.rows = tokenizer(sentences, padding="max_length", max_length=12)
        self.labels = [i % 3 for i in range(len(sentences))]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.rows.items()}, "labels": self.labels[i]}


@recipe("transformers")
def hf_trainer_checkpoint(zoo: Zoo) -> None:
    from transformers import PrinterCallback, ProgressCallback, Trainer, TrainingArguments

    tokenizer = tiny_tokenizer()
    out = zoo.path("trainer")
    args = TrainingArguments(output_dir=str(out), max_steps=1, save_steps=1,
                             per_device_train_batch_size=4, learning_rate=1e-3, logging_steps=1,
                             report_to="none", use_cpu=True, seed=0, save_strategy="steps",
                             lr_scheduler_type="cosine", disable_tqdm=True)
    trainer = Trainer(model=tiny_model("bert").train(), args=args,
                      train_dataset=_Tokens(tokenizer), processing_class=tokenizer)
    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    trainer.train()
    for path in sorted(out.rglob("*")):
        if path.is_file():
            zoo.add(path, "Trainer._save_checkpoint")
    zoo.save_dir("trainer_final", "trainer.save_model", lambda d: trainer.save_model(str(d)))


# sentence-transformers --------------------------------------------------------------------------


def _sentence_transformer(zoo: Zoo, *, dense: bool = False) -> Any:
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(tiny_bert_folder(zoo)), max_seq_length=16)
    modules = [word, models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")]
    if dense:
        modules += [models.Dense(16, 8), models.Normalize()]
    return SentenceTransformer(modules=modules, device="cpu")


@recipe("sentence-transformers")
def st_save_safetensors(zoo: Zoo) -> None:
    model = _sentence_transformer(zoo)
    zoo.save_dir("mean_pooling", "model.save", lambda d: model.save(str(d)))


@recipe("sentence-transformers")
def st_save_bin(zoo: Zoo) -> None:
    model = _sentence_transformer(zoo, dense=True)
    zoo.save_dir("dense_normalize_bin", "model.save",
                 lambda d: model.save(str(d), safe_serialization=False))


@recipe("sentence-transformers")
def st_save_pretrained(zoo: Zoo) -> None:
    model = _sentence_transformer(zoo, dense=True)
    zoo.save_dir("dense_normalize", "model.save_pretrained",
                 lambda d: model.save_pretrained(str(d)))


@recipe("sentence-transformers")
def st_cross_encoder(zoo: Zoo) -> None:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_bert_folder(zoo)), num_labels=1, device="cpu")
    zoo.save_dir("cross_encoder", "model.save_pretrained",
                 lambda d: model.save_pretrained(str(d)))


# peft -------------------------------------------------------------------------------------------


def _peft(base: str, config: Any) -> Any:
    from peft import get_peft_model

    return get_peft_model(tiny_model(base), config)


def _lora_llama() -> Any:
    from peft import LoraConfig, TaskType

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, lora_alpha=8, lora_dropout=0.0,
                        target_modules=["q_proj", "v_proj"])
    return _peft("llama", config)


@recipe("peft")
def peft_lora_bin(zoo: Zoo) -> None:
    model = _lora_llama()
    zoo.save_dir("lora_llama_bin", "model.save_pretrained",
                 lambda d: model.save_pretrained(str(d), safe_serialization=False))


@recipe("peft")
def peft_lora_safetensors(zoo: Zoo) -> None:
    model = _lora_llama()
    zoo.save_dir("lora_llama", "model.save_pretrained", lambda d: model.save_pretrained(str(d)))


@recipe("peft")
def peft_lora_classifier(zoo: Zoo) -> None:
    from peft import LoraConfig, TaskType

    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query", "value"],
                        modules_to_save=["classifier"])
    model = _peft("bert", config)
    zoo.save_dir("lora_bert_seqcls_bin", "model.save_pretrained",
                 lambda d: model.save_pretrained(str(d), safe_serialization=False))


@recipe("peft")
def peft_other_adapters(zoo: Zoo) -> None:
    from peft import IA3Config, PrefixTuningConfig, TaskType

    ia3_config = IA3Config(task_type=TaskType.CAUSAL_LM, target_modules=["c_attn", "mlp.c_proj"],
                           feedforward_modules=["mlp.c_proj"])
    ia3 = _peft("gpt2", ia3_config)
    zoo.save_dir("ia3_gpt2_bin", "model.save_pretrained",
                 lambda d: ia3.save_pretrained(str(d), safe_serialization=False))
    prefix = _peft("gpt2", PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=4))
    zoo.save_dir("prefix_gpt2", "model.save_pretrained", lambda d: prefix.save_pretrained(str(d)))

