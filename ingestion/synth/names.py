"""Built-in name lists for the synthetic study.

Real-looking names (for the identified intake rows) and pseudonyms (for the
transcripts) come from DISJOINT lists: a pseudonym is never a name that a
synthetic participant could really carry.
"""

from __future__ import annotations

FIRST_NAMES_MALE: tuple[str, ...] = tuple(
    """James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel
    Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald
    Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon
    Benjamin Samuel Gregory Alexander Frank Patrick Raymond Jack Dennis Jerry Tyrone Aaron Jose Adam
    Nathan Henry Douglas Zachary Peter Kyle Ethan Walter Noah Jeremy Christian Keith Roger Terry
    Gerald Harold Sean Austin Carl Arthur Lawrence Dylan Jesse Jordan Bryan Billy Joe Bruce Gabriel
    Logan Albert Willie Alan Juan Wayne Elijah Randy Roy Vincent Ralph Eugene Russell Bobby Mason
    Philip Louis Darnell Marcus Andre Terrence Curtis Reginald Maurice Lamont Cedric Darryl Clarence
    Jerome Leon Calvin Antoine Dwayne Derrick Melvin Tony Rodney Troy Shawn Corey Travis Dale Glenn""".split()
)

FIRST_NAMES_FEMALE: tuple[str, ...] = tuple(
    """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty
    Sandra Margaret Ashley Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie
    Dorothy Rebecca Sharon Laura Cynthia Amy Kathleen Angela Shirley Brenda Emma Anna Pamela Nicole
    Samantha Katherine Christine Helen Debra Rachel Carolyn Janet Maria Catherine Heather Diane Olivia
    Julie Joyce Victoria Ruth Virginia Lauren Kelly Christina Joan Evelyn Judith Andrea Hannah Megan
    Cheryl Jacqueline Martha Madison Teresa Gloria Sara Janice Ann Kathryn Abigail Sophia Frances
    Jean Alice Judy Isabella Julia Grace Amber Denise Danielle Marilyn Beverly Charlotte Natalie
    Theresa Diana Brittany Doris Kayla Alexis Lori Tanisha Latoya Keisha Monique Tamika Yolanda
    Shanice Ebony Tiffany Crystal Felicia Regina Wanda Gwendolyn Sheila Renee Valerie Tonya Rhonda""".split()
)

SURNAMES: tuple[str, ...] = tuple(
    """Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez
    Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris
    Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill
    Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans
    Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez
    Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks
    Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers
    Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson
    Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds
    Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens
    Murray Ford Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells
    Vargas Henry Chen Freeman Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon
    Mendez Silva Shaw Snyder Mason Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd
    Rose Stone Salazar Fox Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens
    Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen
    Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley
    Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards Contreras
    Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins Greene
    Nunez Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin
    Dominguez Carr Lawson Jacobs Obrien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey
    Williamson Gilbert Dean Sims Espinoza Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller
    Wang Weber Welch Rojas Lucas Marquez Fields Park Yang Little Banks Padilla Day Walsh Bowman
    Schultz Luna Fowler Mejia Davidson Acosta Brewer May Holland Juarez Newman Pearson Curtis
    Cortez Douglas Schneider Joseph Barrett Navarro Figueroa Keller Avila Wade Molina Stanley Hopkins
    Campos Barnett Bates Chambers Caldwell Beck Lambert Miranda Byrd Craig Ayala Lowe Frazier Powers""".split()
)

# Fictitious pseudonyms: deliberately unusual given names that appear in none
# of the lists above (the test suite checks the lists are disjoint).
PSEUDONYMS: tuple[str, ...] = tuple(
    """Alder Anselm Arden Aurel Basil Birch Bramble Brisco Calloway Cassian Caedmon Corin Crispin
    Dacey Dashiell Delphine Ember Emrys Ferris Fennick Finch Garnet Gideon Halcyon Hollis Idris
    Isolde Jubal Juniper Kestrel Larkin Lazlo Linnet Lorcan Lyric Marlowe Merritt Mireille Neroli
    Oriel Osric Pascoe Perrin Quill Quincey Raffin Rainer Rook Rosalind Saffron Seren Sorrel
    Tamsin Tavish Thackery Thistle Torin Tully Ulric Vesper Wilder Wren Yarrow Zephyr Zinnia
    Alaric Blythe Caspian Dorian Elowen Fable Galen Hawthorne Ines Jory Kaia Leander Maelis
    Niamh Ondine Peregrine Quenby Rhodri Solenne Tierney Undine Verity Wystan Xanthe Ysolde Zeno
    Ashby Bexley Colby Darrow Esmond Fenwick Gresham Halloran Ivo Jolyon Kipling Lysander Mabry
    Nolwenn Orrin Piers Radley Sebastiane Thorne Ursell Vardan Winslow Yestin Zavier Auden Bellamy
    Corvin Dunstan Everild Faramond Gwendal Hesper Ilsabet Joaquim Kenelm Lucan Mordecai Nyssa""".split()
)

STREET_NAMES: tuple[str, ...] = tuple(
    """Maple Oak Cedar Elm Pine Walnut Chestnut Spruce Hickory Poplar Park Lake Hill Church Market
    Mulberry Franklin Lexington Fayette Pratt Lombard Baltimore Charles Calvert Greenmount Harford
    Belair Edison Monument Madison Eager Preston Biddle Chase North Lafayette Gilmor Fulton Monroe
    Pennsylvania Druid Reisterstown Liberty Garrison Heights Woodbourne Northern Cold Spring""".split()
)

STREET_SUFFIXES: tuple[str, ...] = ("St", "Ave", "Rd", "Blvd", "Dr", "Ln", "Ct", "Way", "Pl", "Ter")

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.net", "example.org", "mail.example.com")

AREA_CODES: tuple[str, ...] = ("410", "443", "667", "240", "301")
