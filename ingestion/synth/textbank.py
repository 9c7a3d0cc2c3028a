"""Codebook and phrase bank of the qualitative interviews and focus groups."""

from __future__ import annotations

# top-level theme -> (sub-theme -> leaves) ; an empty tuple makes the sub-theme itself a leaf
CODEBOOK: dict[str, dict[str, tuple[str, ...]]] = {
    "Working alliance": {
        "Case manager qualities": ("Good listener", "Nonjudgmental", "Follows through"),
        "Shared goals": (),
        "Trust": (),
    },
    "Barriers to treatment": {
        "Transportation": (),
        "Housing instability": (),
        "Waiting lists": (),
        "Family and childcare": (),
        "Stigma": (),
    },
    "Case management activities": {
        "Linkage to treatment": (),
        "Advocacy": (),
        "Transport assistance": (),
        "Strengths assessment": (),
    },
    "Recovery goals": {
        "Staying clean": (),
        "Employment": (),
        "Reconnecting with family": (),
        "Stable housing": (),
    },
}


def code_paths() -> list[str]:
    """Every code of the codebook as a path, parents before children, in codebook order."""
    out: list[str] = []
    for top, subs in CODEBOOK.items():
        out.append(top)
        for sub, leaves in subs.items():
            out.append(f"{top}/{sub}")
            out.extend(f"{top}/{sub}/{leaf}" for leaf in leaves)
    return out


def leaf_paths() -> list[str]:
    paths = code_paths()
    return [p for p in paths if not any(q.startswith(p + "/") for q in paths)]


QUESTIONS: dict[str, tuple[str, ...]] = {
    "Working alliance": (
        "Tell me a little about your case manager. What was it like working with them?",
        "How did you and your case manager get along?",
        "Was there anything about the way they treated you that stood out?",
        "Did you feel like you and your counselor wanted the same things?",
    ),
    "Barriers to treatment": (
        "What made it hard to get into treatment?",
        "Were there things that got in the way of going to your appointments?",
        "What happened between the intake and the day you started the program?",
        "Some people say it is hard to keep going. What was that like for you?",
    ),
    "Case management activities": (
        "What kinds of things did you and your case manager actually do together?",
        "Can you walk me through what happened in the sessions?",
        "Did your case manager help you with anything outside of treatment?",
    ),
    "Recovery goals": (
        "What are you hoping for, looking ahead?",
        "What does recovery look like for you?",
        "If things go well this year, what would be different?",
    ),
}

FILLER_INTERVIEWER: tuple[str, ...] = (
    "Okay.", "Mm-hm.", "Right.", "Can you say more about that?", "I see.", "Go on.",
    "That makes sense.", "What happened then?",
)
FILLER_PARTICIPANT: tuple[str, ...] = (
    "Yeah.", "I mean, that's about it.", "I don't know, it's hard to explain.", "Pretty much.",
    "Something like that.", "Honestly? Yeah.",
)

# leaf path -> utterances (the participant's own words)
UTTERANCES: dict[str, tuple[str, ...]] = {
    "Working alliance/Case manager qualities/Good listener": (
        "She actually listened. Like, I'd be going on and on and she'd let me finish before she said anything.",
        "He remembered stuff I told him the week before, which nobody ever does.",
        "It wasn't like talking to a clipboard. She'd look at me and ask what I thought.",
        "When I was upset she didn't rush me out, she just let me talk it through.",
    ),
    "Working alliance/Case manager qualities/Nonjudgmental": (
        "She never looked at me like I was just another junkie, you know?",
        "I told him I used over the weekend and he didn't flip out, he just asked what happened.",
        "She didn't judge me for my record. Everybody else reads that first and that's it.",
        "He talked to me like a regular person, not like I was a problem to fix.",
    ),
    "Working alliance/Case manager qualities/Follows through": (
        "If she said she was gonna call the program, she called. Same day.",
        "He showed up when he said he would show up. That meant a lot.",
        "She got the paperwork done before I even asked about it again.",
        "Every time she told me she'd check on something, she came back with an answer.",
    ),
    "Working alliance/Shared goals": (
        "We both wanted me in a program before the end of the month, so that's what we worked on.",
        "She asked me what I wanted first, and then we made a plan around that.",
        "We agreed that getting my ID back was step one, then the program.",
        "It felt like we were on the same page about what mattered.",
    ),
    "Working alliance/Trust": (
        "After a couple weeks I started telling her the truth about how much I was using.",
        "I trusted him because he didn't make promises he couldn't keep.",
        "I don't trust a lot of people, but I trusted her with my business.",
        "At first I thought she was just another one from the system, but she proved me wrong.",
    ),
    "Barriers to treatment/Transportation": (
        "The program is all the way across town and I don't have a car. Two buses each way.",
        "Half the time I didn't have bus fare, so I just didn't go.",
        "When it rained I'd be out there at the stop for an hour — you miss your slot and they send you home.",
        "Getting there was the hardest part, not the groups themselves.",
    ),
    "Barriers to treatment/Housing instability": (
        "I was bouncing between my cousin's place and the shelter, so I never knew where I'd be.",
        "When you don't have a place to sleep, treatment is not the first thing on your mind.",
        "I lost my room in the middle of it and missed like two weeks.",
        "The shelter lets you in at a certain time, and that clashed with the evening groups.",
    ),
    "Barriers to treatment/Waiting lists": (
        "They said there was a waiting list of three weeks. Three weeks is a long time when you're using.",
        "By the time they called me back with a bed I was already gone again.",
        "I kept calling and they kept saying next week, next week.",
        "The wait is what kills you. You get ready and then there's no spot.",
    ),
    "Barriers to treatment/Family and childcare": (
        "I've got two kids and nobody to watch them during the day program.",
        "My mother was sick, so I was taking care of her and that came first.",
        "My girlfriend didn't want me to go. She said we'd handle it ourselves.",
        "I couldn't do residential because who's gonna keep my kids?",
    ),
    "Barriers to treatment/Stigma": (
        "I didn't want people in the neighborhood seeing me walk into that clinic.",
        "At my job they'd fire me if they knew, so I had to keep it quiet.",
        "People look at you different once they know you're in a program.",
        "My family still thinks methadone is just trading one drug for another.",
    ),
    "Case management activities/Linkage to treatment": (
        "She called the program while I was sitting right there and got me an intake date.",
        "He walked me into the intake office himself so I wouldn't back out.",
        "She had the names of three programs and we picked the one closest to me.",
        "They set up the appointment and wrote it on a card for me.",
    ),
    "Case management activities/Advocacy": (
        "When the program said my Medicaid wasn't active, she got on the phone and sorted it out.",
        "He went with me to court and told the judge I was in treatment.",
        "She pushed the clinic to see me sooner, because I'd been waiting too long.",
        "They told me I wasn't eligible and she argued with them until I was.",
    ),
    "Case management activities/Transport assistance": (
        "She gave me bus tokens every week, that's the only reason I made it.",
        "A couple of times he drove me himself when the van didn't come.",
        "They set me up with the medical transport so I didn't have to walk.",
        "She figured out which bus line goes straight there and wrote it down for me.",
    ),
    "Case management activities/Strengths assessment": (
        "The first time, she asked me what I was good at. Nobody ever asked me that.",
        "We made a list of what I already had going for me — my sister, my job skills, stuff like that.",
        "He said I'd stayed clean before, so I knew how to do it, I just had to do it again.",
        "She wrote down the things I was proud of and we looked at it every session.",
    ),
    "Recovery goals/Staying clean": (
        "I just want to stay clean one day at a time. That's the goal.",
        "I've got ninety days now and I want to keep going.",
        "I want to wake up and not need anything to get through the day.",
        "My goal is to not go back to the corner, period.",
    ),
    "Recovery goals/Employment": (
        "I want to get my CDL back and start driving again.",
        "I'd like a regular job, something with a paycheck every two weeks.",
        "I used to do construction. I want to get back to that.",
        "Work keeps me busy, and busy keeps me out of trouble.",
    ),
    "Recovery goals/Reconnecting with family": (
        "I want my kids to be proud of me again.",
        "My daughter started talking to me again last month. I don't want to mess that up.",
        "I'd like to be at Thanksgiving with my family and actually be present.",
        "My mom said if I finish the program I can come home.",
    ),
    "Recovery goals/Stable housing": (
        "I need my own place, even a room, somewhere with a lock on the door.",
        "Getting housed is the first thing. Everything else comes after that.",
        "She put me on the list for the recovery house and I'm hoping to hear back.",
        "Once I have an address I can do everything else — job, ID, all of it.",
    ),
}

FG_OPENERS: tuple[str, ...] = (
    "Thanks everybody for coming. We're going to talk about your experiences getting into treatment.",
    "Let's start with introductions, first names are fine, the ones on your name cards.",
)
