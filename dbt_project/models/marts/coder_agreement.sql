-- Character-level agreement per code and pair of coders (CONTRACT 3.1): over the
-- transcripts both coded, the characters either coded with any code (published
-- units only); for each code either used there, percent agreement and Cohen's kappa.
-- A transcript is named alike in both landing forms (a CSV transcript_id is the QDPX source
-- name), so a coder of a CSV is paired with a coder of a QDPX of the same transcript; a coded
-- unit delivered in both is one unit (int_coded_units_resolved), and characters are counted once.
with units as (
    select transcript_id, coder_id, code_path, start_char, end_char
    from {{ ref('int_coded_units_published') }}
    where end_char > start_char
),

chars as (
    select distinct transcript_id, coder_id, code_path, unnest(range(start_char, end_char)) as pos
    from units
),

coder_transcripts as (
    select distinct transcript_id, coder_id from units
),

pairs as (
    select a.transcript_id, a.coder_id as coder_a, b.coder_id as coder_b
    from coder_transcripts as a
    inner join coder_transcripts as b on a.transcript_id = b.transcript_id and a.coder_id < b.coder_id
),

pair_chars as (
    select p.coder_a, p.coder_b, c.transcript_id, c.pos, c.code_path, c.coder_id
    from pairs as p
    inner join chars as c on p.transcript_id = c.transcript_id and c.coder_id in (p.coder_a, p.coder_b)
),

compared as (
    select p.coder_a, p.coder_b, count(*) as characters_compared
    from (select distinct coder_a, coder_b, transcript_id, pos from pair_chars) as p
    group by all
),

pair_codes as (
    select distinct coder_a, coder_b, code_path from pair_chars
),

marks as (
    select
        coder_a, coder_b, code_path, transcript_id, pos,
        bool_or(coder_id = coder_a) as by_a,
        bool_or(coder_id = coder_b) as by_b
    from pair_chars
    group by all
),

tallies as (
    select
        coder_a, coder_b, code_path,
        count(*) filter (where by_a and by_b) as both_coded,
        count(*) filter (where by_a) as a_coded,
        count(*) filter (where by_b) as b_coded
    from marks
    group by all
),

rates as (
    select
        k.coder_a,
        k.coder_b,
        k.code_path,
        n.characters_compared,
        coalesce(t.both_coded, 0) as both_coded,
        n.characters_compared - (coalesce(t.a_coded, 0) + coalesce(t.b_coded, 0) - coalesce(t.both_coded, 0))
            as neither_coded,
        coalesce(t.a_coded, 0) / n.characters_compared as pa,
        coalesce(t.b_coded, 0) / n.characters_compared as pb
    from pair_codes as k
    inner join compared as n on k.coder_a = n.coder_a and k.coder_b = n.coder_b
    left join tallies as t on k.coder_a = t.coder_a and k.coder_b = t.coder_b and k.code_path = t.code_path
),

scored as (
    select
        *,
        (both_coded + neither_coded) / characters_compared as po,
        pa * pb + (1 - pa) * (1 - pb) as pe
    from rates
)

select
    code_path,
    coder_a,
    coder_b,
    characters_compared,
    100 * po as percent_agreement,
    case when pe = 1 then null else (po - pe) / (1 - pe) end as cohens_kappa
from scored
