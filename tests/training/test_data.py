import torch

from training.data import TokenRows, batch_index, eval_batches, fingerprint, pack, pad, prepare_data, split_rows, trim

EOS, PAD = 99, 0


def test_pack_joins_docs_with_eos_into_full_rows_and_masks_only_the_tail():
    rows = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], seq_len=4, eos_id=EOS, pad_id=PAD)
    assert rows.ids.tolist() == [[1, 2, 3, EOS], [4, 5, EOS, 6], [7, 8, 9, EOS]]
    assert rows.mask.all()
    short = pack([[1, 2, 3], [4]], seq_len=4, eos_id=EOS, pad_id=PAD)
    assert short.ids.tolist() == [[1, 2, 3, EOS], [4, EOS, PAD, PAD]]
    assert short.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert short.n_tokens == 6  # every document token plus one EOS each, nothing lost


def test_pad_gives_every_document_chunk_a_row_of_its_own():
    rows = pad([[1, 2, 3], [4, 5, 6, 7, 8]], seq_len=4, eos_id=EOS, pad_id=PAD)
    assert rows.ids.tolist() == [[1, 2, 3, EOS], [4, 5, 6, 7], [8, EOS, PAD, PAD]]
    assert rows.n_tokens == pack([[1, 2, 3], [4, 5, 6, 7, 8]], 4, EOS, PAD).n_tokens  # same tokens, more rows


def test_split_is_seeded_disjoint_and_keeps_every_row():
    rows = TokenRows(torch.arange(40).reshape(20, 2), torch.ones(20, 2, dtype=torch.bool))
    train, val = split_rows(rows, val_fraction=0.1, seed=3)
    assert len(val) == 2 and len(train) == 18
    firsts = train.ids[:, 0].tolist() + val.ids[:, 0].tolist()
    assert sorted(firsts) == list(range(0, 40, 2))
    again_train, again_val = split_rows(rows, val_fraction=0.1, seed=3)
    assert torch.equal(val.ids, again_val.ids)


def test_batches_are_a_function_of_position_and_cover_each_epoch_once():
    n_rows, batch = 10, 5
    epoch0 = torch.cat([batch_index(p, batch, n_rows, seed=1) for p in (0, 5)])
    epoch1 = torch.cat([batch_index(p, batch, n_rows, seed=1) for p in (10, 15)])
    assert sorted(epoch0.tolist()) == list(range(10)) == sorted(epoch1.tolist())
    assert epoch0.tolist() != epoch1.tolist()  # reshuffled every epoch
    assert torch.equal(batch_index(5, batch, n_rows, seed=1), epoch0[5:])  # same position, same rows: exact resume
    straddling = batch_index(8, batch, n_rows, seed=1)
    assert straddling.tolist() == epoch0[8:].tolist() + epoch1[:3].tolist()


def test_trim_drops_columns_past_the_longest_real_row():
    rows = pad([[1], [2, 3]], seq_len=8, eos_id=EOS, pad_id=PAD)
    assert trim(rows).ids.shape == (2, 3)
    packed = pack([[1, 2, 3, 4, 5, 6, 7]], seq_len=8, eos_id=EOS)
    assert trim(packed).ids.shape == (1, 8)


def test_eval_batches_are_fixed_and_bounded():
    rows = pack([list(range(1, 40))], seq_len=4, eos_id=EOS)
    batches = list(eval_batches(rows, batch_size=3, max_batches=2))
    assert [len(b) for b in batches] == [3, 3]
    assert batches[0].ids.tolist() == rows.ids[:3].tolist()


def test_fingerprint_names_the_data():
    a = pack([[1, 2, 3]], 4, EOS)
    b = pack([[1, 2, 4]], 4, EOS)
    assert fingerprint(a) == fingerprint(pack([[1, 2, 3]], 4, EOS)) != fingerprint(b)


def test_prepare_data_with_the_smollm2_tokenizer(tiny_tokenizer, verses):
    data = prepare_data(verses, tiny_tokenizer, seq_len=32, val_fraction=0.1, seed=0)
    n_tokens = sum(len(ids) + 1 for ids in tiny_tokenizer(verses, add_special_tokens=False)["input_ids"])
    assert data.train.n_tokens + data.val.n_tokens == n_tokens
    assert data.n_docs == len(verses) and len(data.val) >= 1
    eos = tiny_tokenizer.eos_token_id
    assert int((data.train.ids == eos).sum() + (data.val.ids == eos).sum()) >= len(verses)  # one EOS per document
    assert prepare_data(verses, tiny_tokenizer, 32, 0.1, 0).fingerprint == data.fingerprint


def test_length_grouped_batches_hold_similar_rows_and_cover_each_epoch_once():
    from training.data import grouped_batch_index

    lengths = torch.tensor([5, 1, 9, 3, 7, 2, 8, 4, 6])
    epoch = [grouped_batch_index(position, 3, lengths, seed=0) for position in range(0, 9, 3)]
    assert sorted(torch.cat(epoch).tolist()) == list(range(9))  # every row once per epoch
    groups = sorted(sorted(lengths[batch].tolist()) for batch in epoch)
    assert groups == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]  # rows of similar length share a batch
    again = [grouped_batch_index(position, 3, lengths, seed=0) for position in range(0, 9, 3)]
    assert all(torch.equal(a, b) for a, b in zip(epoch, again, strict=True))  # a function of (seed, position)
