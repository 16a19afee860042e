/* page.c - the waiting page and the JSON answers for waiting clients.
 *
 * Invariants: el_page_load() is the only place that parses a template; it
 * splits the text once into ops (literal slices of the template kept in the
 * struct, and placeholders resolved to an enum), so rendering is a linear
 * copy. A loaded page is immutable and may be shared by every worker. All
 * output goes through struct out, which never writes more than cap - 1 bytes
 * and always NUL-terminates when cap > 0: a too-small buffer truncates, it
 * never overflows. The texts live only here, in one table indexed by enum
 * el_lang and enum text; numbers, plurals and the wait in words are made
 * here too, and the page's script gets them ready-made (the words in the
 * JSON of its poll, the announcement as a data attribute), so no text is
 * spelled twice. The wait is capped at EL_PAGE_ETA_CAP_S everywhere it is
 * shown. */
#include "einlass/page.h"

#include "einlass/common.h"
#include "einlass/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "el_page_builtin.h" /* el_page_builtin[], el_page_builtin_len: conf/waiting-room.html */

#define TEMPLATE_MAX (32 * 1024)
#define PLACEHOLDER_MAX 64 /* "{{" to "}}" must close within this, on one line */

/* ---- texts ----
 *
 * One table, one row per language, for translators: plain words, short
 * sentences. "{n}" stands for a number, "{keep}" for how long a place is
 * kept, "{place}" and "{wait}" for the script's announcement. A missing
 * plural form falls back to the language's OTHER form. No text may hold
 * '"', '<', '>' or '&' (they stand in attributes; test_page checks). */

enum text {
    T_NAME, /* the language's own name, for the switch */
    T_TITLE,
    T_HEADING,
    T_INTRO,
    T_PLACE_LABEL,
    T_WAIT_LABEL,
    T_NOTE,
    T_KEEP_OPEN,
    T_NO_JS,
    T_ADMITTED,
    T_TURN_TITLE,
    T_SOUND,
    T_LANG_LABEL,
    T_SAY,
    T_ABOUT,    /* "about {n}": {n} is "10-15 minutes" */
    T_LT_MIN,   /* the wait is under a minute */
    T_OVER_DAY, /* the wait is over EL_PAGE_ETA_CAP_S */
    T_MIN_ONE,  /* minutes by plural category (CLDR cardinal rules) */
    T_MIN_TWO,
    T_MIN_FEW,
    T_MIN_MANY,
    T_MIN_OTHER,
    T_HOUR_ONE,
    T_HOUR_TWO,
    T_HOUR_FEW,
    T_HOUR_MANY,
    T_HOUR_OTHER,
    T_PAUSED,   /* shown in place of the wait while admissions are on hold */
    T_PRE_PLACE, /* a pre-queue: shown in place of the position */
    T_PRE_OPENS, /* ... in place of the wait: "{time}" is the opening */
    T_PRE_NOTE,  /* ... in place of the note: the order is drawn at the opening */
    T_COUNT
};

/* Plural categories, in the order of T_MIN_* and T_HOUR_*. */
enum plural { P_ONE, P_TWO, P_FEW, P_MANY, P_OTHER };

static const char *const text_names[T_COUNT] = {
    [T_NAME] = "name",
    [T_TITLE] = "title",
    [T_HEADING] = "heading",
    [T_INTRO] = "intro",
    [T_PLACE_LABEL] = "place_label",
    [T_WAIT_LABEL] = "wait_label",
    [T_NOTE] = "note",
    [T_KEEP_OPEN] = "keep_open",
    [T_NO_JS] = "no_js",
    [T_ADMITTED] = "admitted",
    [T_TURN_TITLE] = "turn_title",
    [T_SOUND] = "sound",
    [T_LANG_LABEL] = "lang_label",
    [T_SAY] = "say",
    [T_ABOUT] = "about",
    [T_LT_MIN] = "eta_lt",
    [T_OVER_DAY] = "over_day",
    [T_MIN_ONE] = "minute_one",
    [T_MIN_TWO] = "minute_two",
    [T_MIN_FEW] = "minute_few",
    [T_MIN_MANY] = "minute_many",
    [T_MIN_OTHER] = "minute_other",
    [T_HOUR_ONE] = "hour_one",
    [T_HOUR_TWO] = "hour_two",
    [T_HOUR_FEW] = "hour_few",
    [T_HOUR_MANY] = "hour_many",
    [T_HOUR_OTHER] = "hour_other",
    [T_PAUSED] = "paused",
    [T_PRE_PLACE] = "prequeue_place",
    [T_PRE_OPENS] = "prequeue_opens",
    [T_PRE_NOTE] = "prequeue_note",
};

static const char *const texts[EL_LANG_COUNT][T_COUNT] = {
    [EL_LANG_DE] =
        {
            [T_NAME] = "Deutsch",
            [T_TITLE] = "Warteraum",
            [T_HEADING] = "Sie sind in der Warteschlange",
            [T_INTRO] = "Gerade m\u00f6chten sehr viele Menschen buchen. Damit das Portal f\u00fcr "
                        "alle schnell bleibt, lassen wir Besucherinnen und Besucher nach und nach "
                        "herein. Sobald Sie an der Reihe sind, geht es automatisch weiter.",
            [T_PLACE_LABEL] = "Ihr Platz in der Warteschlange",
            [T_WAIT_LABEL] = "Voraussichtliche Wartezeit",
            [T_NOTE] = "Dies ist eine Sch\u00e4tzung und kann sich \u00e4ndern.",
            [T_KEEP_OPEN] = "Wenn Sie diese Seite schlie\u00dfen oder die Verbindung verlieren, "
                            "bleibt Ihr Platz {keep} lang erhalten. \u00d6ffnen Sie das Portal "
                            "in dieser Zeit wieder im selben Browser. Bitte \u00f6ffnen Sie nicht "
                            "mehrere Tabs: Sie teilen sich einen Platz und kommen dadurch nicht "
                            "schneller an die Reihe.",
            [T_NO_JS] = "Diese Seite aktualisiert sich alle paar Sekunden von selbst.",
            [T_ADMITTED] = "Sie sind an der Reihe. Die Seite wird geladen\u2026",
            [T_TURN_TITLE] = "Sie sind an der Reihe!",
            [T_SOUND] = "Kurzen Ton abspielen, wenn ich an der Reihe bin",
            [T_LANG_LABEL] = "Sprache",
            [T_SAY] = "Sie sind jetzt auf Platz {place}. Voraussichtliche Wartezeit: {wait}.",
            [T_ABOUT] = "etwa {n}",
            [T_LT_MIN] = "weniger als eine Minute",
            [T_OVER_DAY] = "mehr als ein Tag",
            [T_MIN_ONE] = "{n}\u00a0Minute",
            [T_MIN_OTHER] = "{n}\u00a0Minuten",
            [T_HOUR_ONE] = "{n}\u00a0Stunde",
            [T_HOUR_OTHER] = "{n}\u00a0Stunden",
            [T_PAUSED] = "Der Einlass ist kurz angehalten. Ihr Platz bleibt erhalten.",
            [T_PRE_PLACE] = "wird bei der \u00d6ffnung ausgelost",
            [T_PRE_OPENS] = "\u00d6ffnet {time}",
            [T_PRE_NOTE] = "Alle, die vor der \u00d6ffnung da sind, bekommen einen "
                           "zuf\u00e4llig ausgelosten Platz. "
                           "Neu laden oder fr\u00fcher kommen bringt keinen Vorteil.",
        },
    [EL_LANG_EN] =
        {
            [T_NAME] = "English",
            [T_TITLE] = "Waiting room",
            [T_HEADING] = "You are in line",
            [T_INTRO] = "Right now a great many people want to book. To keep the portal fast "
                        "for everyone, we let visitors in a few at a time. When it is your "
                        "turn, you will be let in automatically.",
            [T_PLACE_LABEL] = "Your place in line",
            [T_WAIT_LABEL] = "Estimated wait",
            [T_NOTE] = "This is an estimate and can change.",
            [T_KEEP_OPEN] = "If you close this page or lose your connection, your place is kept "
                            "for {keep}. Open the portal again in the same browser within that "
                            "time. Please do not open several tabs: they share one place and "
                            "will not get you in sooner.",
            [T_NO_JS] = "This page refreshes itself every few seconds.",
            [T_ADMITTED] = "It is your turn. Loading\u2026",
            [T_TURN_TITLE] = "It is your turn!",
            [T_SOUND] = "Play a short sound when it is my turn",
            [T_LANG_LABEL] = "Language",
            [T_SAY] = "You are now number {place} in line. Estimated wait: {wait}.",
            [T_ABOUT] = "about {n}",
            [T_LT_MIN] = "less than a minute",
            [T_OVER_DAY] = "more than a day",
            [T_MIN_ONE] = "{n}\u00a0minute",
            [T_MIN_OTHER] = "{n}\u00a0minutes",
            [T_HOUR_ONE] = "{n}\u00a0hour",
            [T_HOUR_OTHER] = "{n}\u00a0hours",
            [T_PAUSED] = "Admissions are paused for a moment. Your place is kept.",
            [T_PRE_PLACE] = "drawn at the opening",
            [T_PRE_OPENS] = "Opens {time}",
            [T_PRE_NOTE] = "Everyone who arrives before the opening gets a place drawn at random. "
                           "Refreshing the page or coming earlier gives no advantage.",
        },
    [EL_LANG_TR] =
        {
            [T_NAME] = "Türkçe",
            [T_TITLE] = "Bekleme odası",
            [T_HEADING] = "Sıradasınız",
            [T_INTRO] = "Şu anda çok sayıda kişi randevu almak istiyor. Portalın herkes için "
                        "hızlı kalması için ziyaretçileri birkaç kişi halinde içeri alıyoruz. "
                        "Sıranız geldiğinde otomatik olarak içeri alınacaksınız.",
            [T_PLACE_LABEL] = "Sıradaki yeriniz",
            [T_WAIT_LABEL] = "Tahmini bekleme süresi",
            [T_NOTE] = "Bu bir tahmindir ve değişebilir.",
            [T_KEEP_OPEN] = "Bu sayfayı kapatırsanız veya bağlantınız kesilirse yeriniz {keep} "
                            "boyunca korunur. Bu süre içinde portalı aynı tarayıcıda yeniden "
                            "açın. Lütfen birden fazla sekme açmayın: hepsi aynı yeri paylaşır "
                            "ve sizi daha erken içeri almaz.",
            [T_NO_JS] = "Bu sayfa birkaç saniyede bir kendiliğinden yenilenir.",
            [T_ADMITTED] = "Sıra sizde. Yükleniyor\u2026",
            [T_TURN_TITLE] = "Sıra sizde!",
            [T_SOUND] = "Sıram geldiğinde kısa bir ses çal",
            [T_LANG_LABEL] = "Dil",
            [T_SAY] = "Sıradaki yeriniz artık {place}. Tahmini bekleme süresi: {wait}.",
            [T_ABOUT] = "yaklaşık {n}",
            [T_LT_MIN] = "bir dakikadan az",
            [T_OVER_DAY] = "bir günden fazla",
            [T_MIN_OTHER] = "{n}\u00a0dakika",
            [T_HOUR_OTHER] = "{n}\u00a0saat",
            [T_PAUSED] = "Girişler kısa bir süreliğine durduruldu. Yeriniz korunuyor.",
            [T_PRE_PLACE] = "açılışta kurayla belirlenecek",
            [T_PRE_OPENS] = "Açılış: {time}",
            [T_PRE_NOTE] = "Açılıştan önce gelen herkese kurayla rastgele bir yer verilir. "
                           "Sayfayı yenilemek veya daha erken gelmek avantaj sağlamaz.",
        },
    [EL_LANG_AR] =
        {
            [T_NAME] = "العربية",
            [T_TITLE] = "غرفة الانتظار",
            [T_HEADING] = "أنت في قائمة الانتظار",
            [T_INTRO] = "يرغب الآن عدد كبير جدًا من الناس في حجز موعد. حتى يبقى الموقع سريعًا "
                        "للجميع، ندخل الزوار على دفعات صغيرة. عندما يحين دورك، ستدخل تلقائيًا.",
            [T_PLACE_LABEL] = "رقمك في قائمة الانتظار",
            [T_WAIT_LABEL] = "مدة الانتظار المتوقعة",
            [T_NOTE] = "هذا تقدير وقد يتغير.",
            [T_KEEP_OPEN] = "إذا أغلقت هذه الصفحة أو انقطع الاتصال، يبقى مكانك محفوظًا لمدة "
                            "{keep}. افتح الموقع مرة أخرى في نفس المتصفح خلال هذه المدة. يرجى عدم "
                            "فتح عدة علامات تبويب: فهي تتشارك مكانًا واحدًا ولن تجعلك تدخل أسرع.",
            [T_NO_JS] = "يتم تحديث هذه الصفحة تلقائيًا كل بضع ثوانٍ.",
            [T_ADMITTED] = "حان دورك. جارٍ التحميل\u2026",
            [T_TURN_TITLE] = "حان دورك!",
            [T_SOUND] = "تشغيل صوت قصير عندما يحين دوري",
            [T_LANG_LABEL] = "اللغة",
            [T_SAY] = "رقمك الآن {place} في قائمة الانتظار. مدة الانتظار المتوقعة: {wait}.",
            [T_ABOUT] = "حوالي {n}",
            [T_LT_MIN] = "أقل من دقيقة",
            [T_OVER_DAY] = "أكثر من يوم",
            [T_MIN_ONE] = "دقيقة واحدة",
            [T_MIN_TWO] = "دقيقتين",
            [T_MIN_FEW] = "{n}\u00a0دقائق",
            [T_MIN_MANY] = "{n}\u00a0دقيقة",
            [T_MIN_OTHER] = "{n}\u00a0دقيقة",
            [T_HOUR_ONE] = "ساعة واحدة",
            [T_HOUR_TWO] = "ساعتين",
            [T_HOUR_FEW] = "{n}\u00a0ساعات",
            [T_HOUR_MANY] = "{n}\u00a0ساعة",
            [T_HOUR_OTHER] = "{n}\u00a0ساعة",
            [T_PAUSED] = "الدخول متوقف مؤقتًا لفترة قصيرة. مكانك محفوظ.",
            [T_PRE_PLACE] = "يُحدَّد بالقرعة عند الافتتاح",
            [T_PRE_OPENS] = "يفتح في {time}",
            [T_PRE_NOTE] = "كل من يصل قبل الافتتاح يحصل على مكان يُحدَّد بالقرعة. "
                           "تحديث الصفحة أو الحضور مبكرًا لا يمنح أي أفضلية.",
        },
    [EL_LANG_RU] =
        {
            [T_NAME] = "Русский",
            [T_TITLE] = "Зал ожидания",
            [T_HEADING] = "Вы в очереди",
            [T_INTRO] = "Сейчас очень много людей хотят записаться. Чтобы портал работал быстро "
                        "для всех, мы пропускаем посетителей по несколько человек. Когда "
                        "подойдёт ваша очередь, вы пройдёте автоматически.",
            [T_PLACE_LABEL] = "Ваше место в очереди",
            [T_WAIT_LABEL] = "Примерное время ожидания",
            [T_NOTE] = "Это примерная оценка, она может измениться.",
            [T_KEEP_OPEN] = "Если вы закроете эту страницу или пропадёт связь, ваше место "
                            "останется за вами. Срок сохранения места: {keep}. За это время "
                            "снова откройте портал в том же браузере. Пожалуйста, не открывайте "
                            "несколько вкладок: у них одно общее место, и быстрее вы не пройдёте.",
            [T_NO_JS] = "Эта страница сама обновляется каждые несколько секунд.",
            [T_ADMITTED] = "Ваша очередь. Загрузка\u2026",
            [T_TURN_TITLE] = "Ваша очередь!",
            [T_SOUND] = "Подать короткий звуковой сигнал, когда подойдёт моя очередь",
            [T_LANG_LABEL] = "Язык",
            [T_SAY] = "Теперь ваше место в очереди: {place}. Примерное время ожидания: {wait}.",
            [T_ABOUT] = "примерно {n}",
            [T_LT_MIN] = "меньше минуты",
            [T_OVER_DAY] = "больше суток",
            [T_MIN_ONE] = "{n}\u00a0минута",
            [T_MIN_FEW] = "{n}\u00a0минуты",
            [T_MIN_MANY] = "{n}\u00a0минут",
            [T_MIN_OTHER] = "{n}\u00a0минуты",
            [T_HOUR_ONE] = "{n}\u00a0час",
            [T_HOUR_FEW] = "{n}\u00a0часа",
            [T_HOUR_MANY] = "{n}\u00a0часов",
            [T_HOUR_OTHER] = "{n}\u00a0часа",
            [T_PAUSED] = "Пропуск ненадолго приостановлен. Ваше место сохраняется.",
            [T_PRE_PLACE] = "определится жеребьёвкой при открытии",
            [T_PRE_OPENS] = "Открытие: {time}",
            [T_PRE_NOTE] = "Все, кто пришёл до открытия, получат место по жребию. "
                           "Обновлять страницу или приходить раньше бесполезно.",
        },
    [EL_LANG_UK] =
        {
            [T_NAME] = "Українська",
            [T_TITLE] = "Зала очікування",
            [T_HEADING] = "Ви в черзі",
            [T_INTRO] = "Зараз дуже багато людей хочуть записатися. Щоб портал працював швидко "
                        "для всіх, ми пропускаємо відвідувачів по кілька осіб. Коли настане "
                        "ваша черга, ви пройдете автоматично.",
            [T_PLACE_LABEL] = "Ваше місце в черзі",
            [T_WAIT_LABEL] = "Орієнтовний час очікування",
            [T_NOTE] = "Це приблизна оцінка, вона може змінитися.",
            [T_KEEP_OPEN] = "Якщо ви закриєте цю сторінку або зникне зв\u2019язок, ваше місце "
                            "залишиться за вами. Строк збереження місця: {keep}. За цей час знову "
                            "відкрийте портал у тому самому браузері. Будь ласка, не відкривайте "
                            "кілька вкладок: у них одне спільне місце, і швидше ви не пройдете.",
            [T_NO_JS] = "Ця сторінка сама оновлюється кожні кілька секунд.",
            [T_ADMITTED] = "Ваша черга. Завантаження\u2026",
            [T_TURN_TITLE] = "Ваша черга!",
            [T_SOUND] = "Подати короткий звуковий сигнал, коли настане моя черга",
            [T_LANG_LABEL] = "Мова",
            [T_SAY] = "Тепер ваше місце в черзі: {place}. Орієнтовний час очікування: {wait}.",
            [T_ABOUT] = "приблизно {n}",
            [T_LT_MIN] = "менше хвилини",
            [T_OVER_DAY] = "понад добу",
            [T_MIN_ONE] = "{n}\u00a0хвилина",
            [T_MIN_FEW] = "{n}\u00a0хвилини",
            [T_MIN_MANY] = "{n}\u00a0хвилин",
            [T_MIN_OTHER] = "{n}\u00a0хвилини",
            [T_HOUR_ONE] = "{n}\u00a0година",
            [T_HOUR_FEW] = "{n}\u00a0години",
            [T_HOUR_MANY] = "{n}\u00a0годин",
            [T_HOUR_OTHER] = "{n}\u00a0години",
            [T_PAUSED] = "Пропуск ненадовго призупинено. Ваше місце зберігається.",
            [T_PRE_PLACE] = "визначиться жеребкуванням "
                            "під час відкриття",
            [T_PRE_OPENS] = "Відкриття: {time}",
            [T_PRE_NOTE] = "Усі, хто прийшов до відкриття, отримають місце за жеребом. "
                           "Оновлювати сторінку чи приходити раніше не потрібно.",
        },
    [EL_LANG_PL] =
        {
            [T_NAME] = "Polski",
            [T_TITLE] = "Poczekalnia",
            [T_HEADING] = "Jesteś w kolejce",
            [T_INTRO] = "W tej chwili bardzo wiele osób chce się zarejestrować. Aby portal "
                        "działał szybko dla wszystkich, wpuszczamy odwiedzających po kilka osób. "
                        "Gdy nadejdzie Twoja kolej, wejdziesz automatycznie.",
            [T_PLACE_LABEL] = "Twoje miejsce w kolejce",
            [T_WAIT_LABEL] = "Szacowany czas oczekiwania",
            [T_NOTE] = "To tylko szacunek i może się zmienić.",
            [T_KEEP_OPEN] = "Jeśli zamkniesz tę stronę lub stracisz połączenie, Twoje miejsce "
                            "zostanie zachowane. Czas zachowania miejsca: {keep}. W tym czasie "
                            "otwórz portal ponownie w tej samej przeglądarce. Prosimy nie "
                            "otwierać kilku kart: mają jedno wspólne miejsce i nie przyspieszą "
                            "wejścia.",
            [T_NO_JS] = "Ta strona sama odświeża się co kilka sekund.",
            [T_ADMITTED] = "Twoja kolej. Ładowanie\u2026",
            [T_TURN_TITLE] = "Twoja kolej!",
            [T_SOUND] = "Odtwórz krótki dźwięk, gdy nadejdzie moja kolej",
            [T_LANG_LABEL] = "Język",
            [T_SAY] = "Twoje miejsce w kolejce to teraz {place}. Szacowany czas oczekiwania: "
                      "{wait}.",
            [T_ABOUT] = "mniej więcej {n}",
            [T_LT_MIN] = "mniej niż minuta",
            [T_OVER_DAY] = "ponad dobę",
            [T_MIN_ONE] = "{n}\u00a0minuta",
            [T_MIN_FEW] = "{n}\u00a0minuty",
            [T_MIN_MANY] = "{n}\u00a0minut",
            [T_MIN_OTHER] = "{n}\u00a0minuty",
            [T_HOUR_ONE] = "{n}\u00a0godzina",
            [T_HOUR_FEW] = "{n}\u00a0godziny",
            [T_HOUR_MANY] = "{n}\u00a0godzin",
            [T_HOUR_OTHER] = "{n}\u00a0godziny",
            [T_PAUSED] = "Wpuszczanie jest na chwilę wstrzymane. Twoje miejsce jest zachowane.",
            [T_PRE_PLACE] = "zostanie wylosowane przy otwarciu",
            [T_PRE_OPENS] = "Otwarcie: {time}",
            [T_PRE_NOTE] = "Każdy, kto przyjdzie przed otwarciem, otrzyma miejsce "
                           "wylosowane przy otwarciu. "
                           "Odświeżanie strony ani wcześniejsze przyjście nie daje przewagi.",
        },
};

/* ---- template ---- */

enum op_kind {
    OP_LIT,
    OP_LANG,
    OP_DIR,
    OP_POSITION,
    OP_ETA,
    OP_ETA_S,
    OP_ETA_LOW_S,
    OP_ETA_HIGH_S,
    OP_POLL_S,
    OP_KEEP,
    OP_LANG_LINKS,
    OP_TEXT,
    OP_ETA_1M, /* older templates' script phrases, made from the table */
    OP_ETA_NM,
    OP_ETA_NH
};

struct op {
    uint8_t kind; /* enum op_kind */
    uint8_t text; /* OP_TEXT: enum text */
    uint32_t off; /* OP_LIT: start of the slice in el_page.tpl */
    uint32_t len; /* OP_LIT: length of the slice */
};

struct el_page {
    char *tpl;      /* the template text; OP_LIT ops point into it */
    struct op *ops; /* the template in order: literals and placeholders */
    size_t nops;    /* entries in ops */
};

static const struct {
    const char *name;
    enum op_kind kind;
} placeholders[] = {
    {"lang", OP_LANG},
    {"dir", OP_DIR},
    {"position", OP_POSITION},
    {"eta", OP_ETA},
    {"eta_s", OP_ETA_S},
    {"eta_low_s", OP_ETA_LOW_S},
    {"eta_high_s", OP_ETA_HIGH_S},
    {"poll_s", OP_POLL_S},
    {"keep_place", OP_KEEP},
    {"lang_links", OP_LANG_LINKS},
    {"t:eta_1m", OP_ETA_1M},
    {"t:eta_nm", OP_ETA_NM},
    {"t:eta_nh", OP_ETA_NH},
};

/* Map a placeholder name to an op. Returns 0 or -1 if unknown. */
static int resolve(const char *name, size_t len, struct op *op)
{
    for (size_t i = 0; i < EL_ARRAY_LEN(placeholders); i++) {
        if (strlen(placeholders[i].name) == len && memcmp(placeholders[i].name, name, len) == 0) {
            op->kind = (uint8_t)placeholders[i].kind;
            return 0;
        }
    }
    if (len > 2 && memcmp(name, "t:", 2) == 0) {
        for (size_t i = 0; i < T_COUNT; i++) {
            if (strlen(text_names[i]) == len - 2 && memcmp(text_names[i], name + 2, len - 2) == 0) {
                op->kind = OP_TEXT;
                op->text = (uint8_t)i;
                return 0;
            }
        }
    }
    return -1;
}

static unsigned line_of(const char *s, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos; i++)
        line += s[i] == '\n';
    return line;
}

/* Split tpl[0..len) into p->ops. Returns 0, or -1 with *err set (allocated). */
static int split(struct el_page *p, size_t len, const char *where, char **err)
{
    const char *s = p->tpl;
    /* Every placeholder needs at least 5 bytes, and literals alternate with them. */
    p->ops = el_calloc(len / 5 * 2 + 2, sizeof(*p->ops));
    size_t lit = 0, i = 0;
    while (i + 1 < len) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }
        size_t name = i + 2, j = name;
        while (j + 1 < len && j - i < PLACEHOLDER_MAX && s[j] != '\n' &&
               !(s[j] == '}' && s[j + 1] == '}'))
            j++;
        if (j + 1 >= len || s[j] != '}' || s[j + 1] != '}') {
            *err = el_sprintf("%s:%u: unterminated placeholder (\"{{\" without \"}}\")", where,
                              line_of(s, i));
            goto fail;
        }
        struct op op = {0};
        if (resolve(s + name, j - name, &op) != 0) {
            *err = el_sprintf("%s:%u: unknown placeholder {{%.*s}}", where, line_of(s, i),
                              (int)(j - name), s + name);
            goto fail;
        }
        if (i > lit)
            p->ops[p->nops++] =
                (struct op){.kind = OP_LIT, .off = (uint32_t)lit, .len = (uint32_t)(i - lit)};
        p->ops[p->nops++] = op;
        i = lit = j + 2;
    }
    if (len > lit)
        p->ops[p->nops++] =
            (struct op){.kind = OP_LIT, .off = (uint32_t)lit, .len = (uint32_t)(len - lit)};
    return 0;
fail:
    return -1;
}

/* Read at most TEMPLATE_MAX bytes of path into a new NUL-terminated buffer. */
static int read_template(const char *path, char **out, size_t *out_len, char **err)
{
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *err = el_sprintf("%s: cannot open template: %s", path, strerror(errno));
        goto fail;
    }
    buf = el_malloc(TEMPLATE_MAX + 2);
    size_t n = fread(buf, 1, TEMPLATE_MAX + 1, f);
    if (ferror(f)) {
        *err = el_sprintf("%s: cannot read template: %s", path, strerror(errno));
        goto fail;
    }
    if (n > TEMPLATE_MAX) {
        *err = el_sprintf("%s: template is larger than %d bytes", path, TEMPLATE_MAX);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
fail:
    if (f != NULL) fclose(f);
    free(buf);
    return -1;
}

struct el_page *el_page_load(const char *path, char **err)
{
    struct el_page *p = el_calloc(1, sizeof(*p));
    size_t len;
    const char *where = path;
    *err = NULL;
    if (path == NULL || path[0] == '\0') {
        where = "(built-in waiting-room.html)";
        len = el_page_builtin_len;
        p->tpl = el_strndup((const char *)el_page_builtin, len);
    } else if (read_template(path, &p->tpl, &len, err) != 0) {
        goto fail;
    }
    if (split(p, len, where, err) != 0) goto fail;
    return p;
fail:
    el_page_free(p);
    return NULL;
}

void el_page_free(struct el_page *p)
{
    if (p == NULL) return;
    free(p->tpl);
    free(p->ops);
    free(p);
}

/* ---- bounded output ---- */

struct out {
    char *p;    /* the caller's buffer */
    size_t len; /* bytes written, excluding the NUL */
    size_t cap; /* size of p; at most cap - 1 bytes are written */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->cap == 0) return;
    size_t room = o->cap - 1 - o->len;
    if (n > room) n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[sizeof(d) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, d + sizeof(d) - n, n);
}

static void put_int(struct out *o, int v)
{
    if (v < 0) {
        put(o, "-", 1);
        put_u64(o, (uint64_t)0 - (uint64_t)(int64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static size_t finish(struct out *o)
{
    if (o->cap > 0) o->p[o->len] = '\0';
    return o->len;
}

/* ---- languages: tags, numbers, plurals ---- */

static const struct {
    const char *tag;   /* BCP 47 primary subtag */
    const char *group; /* thousands separator */
    uint8_t min_group; /* group only numbers of at least 4 + min_group - 1 digits */
    bool arabic_digits; /* U+0660..U+0669 */
    bool rtl;           /* written right to left */
} langs[EL_LANG_COUNT] = {
    [EL_LANG_EN] = {"en", ",", 1, false, false},
    [EL_LANG_DE] = {"de", ".", 1, false, false},
    [EL_LANG_TR] = {"tr", ".", 1, false, false},
    [EL_LANG_AR] = {"ar", "\u066c", 1, true, true},
    [EL_LANG_RU] = {"ru", "\u00a0", 1, false, false},
    [EL_LANG_UK] = {"uk", "\u00a0", 1, false, false},
    [EL_LANG_PL] = {"pl", "\u00a0", 2, false, false},
};

/* The switch lists the languages in this order: German first (Berlin). */
static const enum el_lang switch_order[EL_LANG_COUNT] = {
    EL_LANG_DE, EL_LANG_EN, EL_LANG_TR, EL_LANG_AR, EL_LANG_RU, EL_LANG_UK, EL_LANG_PL,
};

static enum el_lang valid_lang(enum el_lang l)
{
    return (unsigned)l < EL_LANG_COUNT ? l : EL_LANG_EN;
}

const char *el_page_lang_tag(enum el_lang lang)
{
    return langs[valid_lang(lang)].tag;
}

int el_page_lang_parse(const char *tag, size_t len)
{
    for (int i = 0; i < EL_LANG_COUNT; i++)
        if (el_strcaseeq(tag, len, langs[i].tag, strlen(langs[i].tag))) return i;
    return -1;
}

/* CLDR cardinal plural category of a whole number n in lang. */
static enum plural plural_of(enum el_lang lang, uint64_t n)
{
    uint64_t m10 = n % 10, m100 = n % 100;
    switch (lang) {
    case EL_LANG_RU:
    case EL_LANG_UK:
        if (m10 == 1 && m100 != 11) return P_ONE;
        if (m10 >= 2 && m10 <= 4 && !(m100 >= 12 && m100 <= 14)) return P_FEW;
        return P_MANY;
    case EL_LANG_PL:
        if (n == 1) return P_ONE;
        if (m10 >= 2 && m10 <= 4 && !(m100 >= 12 && m100 <= 14)) return P_FEW;
        return P_MANY;
    case EL_LANG_AR:
        if (n == 1) return P_ONE;
        if (n == 2) return P_TWO;
        if (m100 >= 3 && m100 <= 10) return P_FEW;
        if (m100 >= 11) return P_MANY;
        return P_OTHER; /* 0, 100-102, ... */
    default:
        return n == 1 ? P_ONE : P_OTHER;
    }
}

/* A whole number as lang writes it: its digits, thousands grouped. */
static void put_num(struct out *o, enum el_lang lang, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[sizeof(d) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    const char *digits = d + sizeof(d) - n;
    bool group = n >= 4u + langs[lang].min_group - 1u;
    for (size_t i = 0; i < n; i++) {
        if (group && i > 0 && (n - i) % 3 == 0) put_str(o, langs[lang].group);
        if (langs[lang].arabic_digits) {
            char ad[2] = {'\xd9', (char)(0xa0 + (digits[i] - '0'))}; /* U+0660 + d */
            put(o, ad, 2);
        } else {
            put(o, digits + i, 1);
        }
    }
}

static const char *text_of(enum el_lang lang, enum text t)
{
    const char *s = texts[lang][t];
    return s != NULL ? s : texts[EL_LANG_EN][t];
}

/* The form of a minute (unit T_MIN_ONE) or hour (T_HOUR_ONE) text for n; a
 * form without "{n}" ("دقيقتين") is only used alone, never after a range. */
static const char *unit_form(enum el_lang lang, enum text unit, uint64_t n, bool range)
{
    const char *f = texts[lang][unit + plural_of(lang, n)];
    if (f == NULL || (range && strstr(f, "{n}") == NULL)) f = texts[lang][unit + P_OTHER];
    return f != NULL ? f : texts[EL_LANG_EN][unit + (n == 1 ? P_ONE : P_OTHER)];
}

/* fmt with "{n}" replaced by the number a (a range "a-b" when b != a);
 * other braces are copied as they are. */
static void put_fmt_num(struct out *o, enum el_lang lang, const char *fmt, uint64_t a, uint64_t b)
{
    const char *at = strstr(fmt, "{n}");
    if (at == NULL) {
        put_str(o, fmt);
        return;
    }
    put(o, fmt, (size_t)(at - fmt));
    put_num(o, lang, a);
    if (b != a) {
        put_str(o, "\u2013"); /* en dash */
        put_num(o, lang, b);
    }
    put_str(o, at + 3);
}

/* "{n} minutes" for the range a-b of unit, plural by its upper end. */
static void put_units(struct out *o, enum el_lang lang, enum text unit, uint64_t a, uint64_t b)
{
    put_fmt_num(o, lang, unit_form(lang, unit, b, a != b), a, b);
}

/* A text whose "{n}" stands for what fill writes. */
static void put_around(struct out *o, const char *fmt, void (*fill)(struct out *, const void *),
                       const void *arg)
{
    const char *at = strstr(fmt, "{n}");
    if (at == NULL) {
        put_str(o, fmt);
        return;
    }
    put(o, fmt, (size_t)(at - fmt));
    fill(o, arg);
    put_str(o, at + 3);
}

/* ---- the wait ---- */

void el_page_eta(uint64_t eta_s, struct el_page_eta *e)
{
    /* The measured rate moves: the range runs from 4/5 to 5/4 of the estimate. */
    el_page_eta_range(eta_s, eta_s * 4 / 5, (eta_s * 5 + 3) / 4, e);
}

void el_page_eta_range(uint64_t eta_s, uint64_t lo, uint64_t hi, struct el_page_eta *e)
{
    if (eta_s >= EL_PAGE_ETA_CAP_S) {
        *e = (struct el_page_eta){EL_PAGE_ETA_CAP_S, EL_PAGE_ETA_CAP_S, EL_PAGE_ETA_CAP_S};
        return;
    }
    e->s = eta_s;
    if (eta_s < 60) { /* "less than a minute" */
        e->low_s = 0;
        e->high_s = 60;
        return;
    }
    if (lo > eta_s) lo = eta_s;
    if (hi < eta_s) hi = eta_s;
    if (eta_s < 3600 && hi > 90 * 60) hi = 90 * 60; /* minutes below an hour */
    uint64_t step = hi <= 15 * 60 ? 60 : hi <= 90 * 60 ? 300 : 3600;
    uint64_t low = (lo + step / 2) / step * step;
    if (low > eta_s) low -= step;
    if (low == 0) low = step;
    if (low > eta_s) low = eta_s / 60 * 60;
    uint64_t high = (hi + step - 1) / step * step;
    if (high > EL_PAGE_ETA_CAP_S) high = EL_PAGE_ETA_CAP_S;
    e->low_s = low;
    e->high_s = high;
}

/* The view's wait: the room's range when it gave one. */
static void view_eta(const struct el_page_view *v, struct el_page_eta *e)
{
    if (v->eta_high_s > 0) el_page_eta_range(v->eta_s, v->eta_low_s, v->eta_high_s, e);
    else el_page_eta(v->eta_s, e);
}

struct wait_words {
    enum el_lang lang;
    const struct el_page_eta *e;
};

static void fill_range(struct out *o, const void *arg)
{
    const struct wait_words *w = arg;
    uint64_t unit = w->e->high_s <= 90 * 60 ? 60 : 3600;
    put_units(o, w->lang, unit == 60 ? T_MIN_ONE : T_HOUR_ONE, w->e->low_s / unit,
              w->e->high_s / unit);
}

/* The wait in words: "less than a minute", "about 10-15 minutes", "about
 * 2-3 hours", "more than a day". */
static void put_eta(struct out *o, enum el_lang lang, const struct el_page_eta *e)
{
    if (e->s >= EL_PAGE_ETA_CAP_S) {
        put_str(o, text_of(lang, T_OVER_DAY));
    } else if (e->high_s <= 60) {
        put_str(o, text_of(lang, T_LT_MIN));
    } else {
        struct wait_words w = {lang, e};
        put_around(o, text_of(lang, T_ABOUT), fill_range, &w);
    }
}

/* How long a place is kept, in words: whole minutes up to 90, whole hours
 * above (rounded down: the promise is never longer than the truth). */
static void put_keep(struct out *o, enum el_lang lang, int keep_s)
{
    uint64_t s = keep_s > 0 ? (uint64_t)keep_s : 0;
    if (s < 60) {
        put_str(o, text_of(lang, T_LT_MIN));
    } else if (s <= 90 * 60) {
        put_units(o, lang, T_MIN_ONE, s / 60, s / 60);
    } else {
        put_units(o, lang, T_HOUR_ONE, s / 3600, s / 3600);
    }
}

/* The opening as the event wrote it: "2027-03-01 09:00 (UTC+01:00)". */
static void put_opens(struct out *o, const struct el_page_view *v)
{
    char b[48];
    el_time_rfc3339(v->opens_at_ms, v->opens_offset_min, b, sizeof(b));
    put(o, b, 10);
    put_str(o, " ");
    put(o, b + 11, 5);
    put_str(o, " (UTC");
    put_str(o, v->opens_offset_min != 0 ? b + 19 : "");
    put_str(o, ")");
}

/* The pre-queue's wait text: T_PRE_OPENS with "{time}" filled in. */
static void put_pre_opens(struct out *o, const struct el_page_view *v)
{
    const char *s = text_of(v->lang, T_PRE_OPENS);
    const char *at = strstr(s, "{time}");
    if (at == NULL) {
        put_str(o, s);
        return;
    }
    put(o, s, (size_t)(at - s));
    put_opens(o, v);
    put_str(o, at + 6);
}

/* A table text with "{keep}" filled in. */
static void put_text(struct out *o, const struct el_page_view *v, enum text t)
{
    if (v->prequeue && t == T_NOTE) t = T_PRE_NOTE;
    const char *s = text_of(v->lang, t);
    const char *at = t == T_KEEP_OPEN ? strstr(s, "{keep}") : NULL;
    if (at == NULL) {
        put_str(o, s);
        return;
    }
    put(o, s, (size_t)(at - s));
    put_keep(o, v->lang, v->keep_place_s);
    put_str(o, at + 6);
}

/* ---- the language switch ---- */

#define TO_MAX 1024       /* longest way back the switch accepts */
#define LINK_TARGET_MAX 256 /* longer targets: the links go back to "/" */

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
}

/* The target percent-encoded as a query value, or "" if it is not a path or
 * too long (the switch then goes back to "/"). */
static void put_target_param(struct out *o, const struct el_page_view *v)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *t = (const unsigned char *)v->target;
    size_t n = v->target_len, enc = 0;
    if (t == NULL || n == 0 || t[0] != '/') return;
    for (size_t i = 0; i < n; i++)
        enc += unreserved(t[i]) ? 1 : 3;
    if (enc > LINK_TARGET_MAX) return;
    put_str(o, "&amp;to=");
    for (size_t i = 0; i < n; i++) {
        if (unreserved(t[i])) {
            put(o, (const char *)t + i, 1);
        } else {
            char e[3] = {'%', hex[t[i] >> 4], hex[t[i] & 15]};
            put(o, e, 3);
        }
    }
}

static void put_lang_links(struct out *o, const struct el_page_view *v)
{
    for (size_t i = 0; i < EL_LANG_COUNT; i++) {
        enum el_lang l = switch_order[i];
        const char *tag = langs[l].tag, *dir = langs[l].rtl ? "rtl" : "ltr";
        put_str(o, "<li lang=\"");
        put_str(o, tag);
        put_str(o, "\" dir=\"");
        put_str(o, dir);
        if (l == v->lang) {
            put_str(o, "\"><span aria-current=\"true\">");
            put_str(o, texts[l][T_NAME]);
            put_str(o, "</span></li>");
            continue;
        }
        put_str(o, "\"><a hreflang=\"");
        put_str(o, tag);
        put_str(o, "\" href=\"" EL_PAGE_LANG_PATH "?set=");
        put_str(o, tag);
        put_target_param(o, v);
        put_str(o, "\">");
        put_str(o, texts[l][T_NAME]);
        put_str(o, "</a></li>");
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode a query value into to[TO_MAX]; the result must be a local
 * path of safe characters. Returns its length, or 0 if it is not one. */
static size_t decode_to(const char *s, size_t n, char *to)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int a = i + 1 < n ? hexval(s[i + 1]) : -1;
            int b = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (a < 0 || b < 0) return 0;
            c = a * 16 + b;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        /* printable ASCII without space, quotes, angle brackets, backslash */
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' ||
            c == '\\' || c == '`')
            return 0;
        if (len == TO_MAX) return 0;
        to[len++] = (char)c;
    }
    if (len == 0 || to[0] != '/' || (len > 1 && to[1] == '/')) return 0;
    return len;
}

/* s with '&' as "&amp;" (the other specials cannot occur: decode_to). */
static void put_attr(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '&') put_str(o, "&amp;");
        else put(o, s + i, 1);
    }
}

size_t el_page_lang_switch(const char *query, size_t query_len, int *lang, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    char to[TO_MAX];
    size_t to_len = 0;
    *lang = -1;
    const char *v;
    size_t vlen;
    if (el_http_query_param(query, query_len, "set", &v, &vlen)) *lang = el_page_lang_parse(v, vlen);
    if (el_http_query_param(query, query_len, "to", &v, &vlen)) to_len = decode_to(v, vlen, to);
    if (to_len == 0) {
        to[0] = '/';
        to_len = 1;
    }
    enum el_lang l = *lang >= 0 ? (enum el_lang)*lang : EL_LANG_EN;
    put_str(&o, "<!DOCTYPE html>\n<html lang=\"");
    put_str(&o, langs[l].tag);
    put_str(&o, "\" dir=\"");
    put_str(&o, langs[l].rtl ? "rtl" : "ltr");
    put_str(&o, "\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"robots\" content=\"noindex\">\n"
                "<meta http-equiv=\"refresh\" content=\"0; url=");
    put_attr(&o, to, to_len);
    put_str(&o, "\">\n<title>");
    put_str(&o, texts[l][T_TITLE]);
    put_str(&o, "</title>\n</head>\n<body>\n<p><a href=\"");
    put_attr(&o, to, to_len);
    put_str(&o, "\">");
    put_str(&o, texts[l][T_TITLE]);
    put_str(&o, "</a></p>\n</body>\n</html>\n");
    return finish(&o);
}

/* ---- rendering ---- */

static void fill_one_minute(struct out *o, const void *arg)
{
    put_units(o, *(const enum el_lang *)arg, T_MIN_ONE, 1, 1);
}

static void fill_n_minutes(struct out *o, const void *arg)
{
    put_str(o, unit_form(*(const enum el_lang *)arg, T_MIN_ONE, 5, false));
}

static void fill_n_hours(struct out *o, const void *arg)
{
    put_str(o, unit_form(*(const enum el_lang *)arg, T_HOUR_ONE, 5, false));
}

size_t el_page_html(const struct el_page *p, const struct el_page_view *view, char *out,
                    size_t cap)
{
    struct out o = {out, 0, cap};
    struct el_page_view v = *view;
    v.lang = valid_lang(v.lang);
    struct el_page_eta e;
    view_eta(&v, &e);
    for (size_t i = 0; i < p->nops; i++) {
        const struct op *op = &p->ops[i];
        switch ((enum op_kind)op->kind) {
        case OP_LIT:
            put(&o, p->tpl + op->off, op->len);
            break;
        case OP_LANG:
            put_str(&o, langs[v.lang].tag);
            break;
        case OP_DIR:
            put_str(&o, langs[v.lang].rtl ? "rtl" : "ltr");
            break;
        case OP_POSITION:
            if (v.prequeue)
                put_str(&o, text_of(v.lang, T_PRE_PLACE));
            else
                put_num(&o, v.lang, v.position);
            break;
        case OP_ETA:
            if (v.prequeue)
                put_pre_opens(&o, &v);
            else if (v.paused)
                put_str(&o, text_of(v.lang, T_PAUSED));
            else
                put_eta(&o, v.lang, &e);
            break;
        case OP_ETA_S:
            put_u64(&o, e.s);
            break;
        case OP_ETA_LOW_S:
            put_u64(&o, e.low_s);
            break;
        case OP_ETA_HIGH_S:
            put_u64(&o, e.high_s);
            break;
        case OP_POLL_S:
            put_int(&o, v.poll_s);
            break;
        case OP_KEEP:
            put_keep(&o, v.lang, v.keep_place_s);
            break;
        case OP_LANG_LINKS:
            put_lang_links(&o, &v);
            break;
        case OP_TEXT:
            put_text(&o, &v, (enum text)op->text);
            break;
        case OP_ETA_1M:
            put_around(&o, text_of(v.lang, T_ABOUT), fill_one_minute, &v.lang);
            break;
        case OP_ETA_NM:
            put_around(&o, text_of(v.lang, T_ABOUT), fill_n_minutes, &v.lang);
            break;
        case OP_ETA_NH:
            put_around(&o, text_of(v.lang, T_ABOUT), fill_n_hours, &v.lang);
            break;
        }
    }
    return finish(&o);
}

/* s as the inside of a JSON string (the table's texts need no more than
 * this: no control characters). */
static void put_json_chars(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') put(o, "\\", 1);
        put(o, s + i, 1);
    }
}

size_t el_page_json_waiting(const struct el_page_view *v, bool words, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    struct el_page_eta e;
    view_eta(v, &e);
    put_str(&o, "{\"state\":\"waiting\",\"position\":");
    put_u64(&o, v->position);
    put_str(&o, ",\"eta_s\":");
    put_u64(&o, e.s);
    put_str(&o, ",\"eta_low_s\":");
    put_u64(&o, e.low_s);
    put_str(&o, ",\"eta_high_s\":");
    put_u64(&o, e.high_s);
    put_str(&o, ",\"poll_s\":");
    put_int(&o, v->poll_s);
    if (words) {
        enum el_lang lang = valid_lang(v->lang);
        char buf[256];
        struct out w = {buf, 0, sizeof(buf)};
        put_str(&o, ",\"lang\":\"");
        put_str(&o, langs[lang].tag);
        put_str(&o, "\",\"place_text\":\"");
        put_num(&w, lang, v->position);
        put_json_chars(&o, buf, finish(&w));
        put_str(&o, "\",\"eta_text\":\"");
        w.len = 0;
        if (v->paused)
            put_str(&w, text_of(lang, T_PAUSED));
        else
            put_eta(&w, lang, &e);
        put_json_chars(&o, buf, finish(&w));
        put_str(&o, "\"");
    }
    if (v->paused) put_str(&o, ",\"paused\":true");
    put_str(&o, "}");
    return finish(&o);
}

size_t el_page_json_prequeue(const struct el_page_view *v, bool words, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    char b[48];
    put_str(&o, "{\"state\":\"prequeue\",\"event\":\"");
    put_json_chars(&o, v->event ? v->event : "", strlen(v->event ? v->event : ""));
    put_str(&o, "\",\"opens_at\":\"");
    el_time_rfc3339(v->opens_at_ms, v->opens_offset_min, b, sizeof(b));
    put_str(&o, b);
    put_str(&o, "\",\"opens_in_s\":");
    int64_t in_ms = v->opens_at_ms - v->now_ms;
    put_u64(&o, in_ms > 0 ? (uint64_t)(in_ms + 999) / 1000 : 0);
    put_str(&o, ",\"order\":\"drawn at the opening\",\"poll_s\":");
    put_int(&o, v->poll_s);
    if (words) {
        enum el_lang lang = valid_lang(v->lang);
        char buf[512];
        struct out w = {buf, 0, sizeof(buf)};
        put_str(&o, ",\"lang\":\"");
        put_str(&o, langs[lang].tag);
        put_str(&o, "\",\"place_text\":\"");
        put_str(&w, text_of(lang, T_PRE_PLACE));
        put_json_chars(&o, buf, finish(&w));
        put_str(&o, "\",\"eta_text\":\"");
        w.len = 0;
        struct el_page_view lv = *v;
        lv.lang = lang;
        put_pre_opens(&w, &lv);
        put_json_chars(&o, buf, finish(&w));
        put_str(&o, "\"");
    }
    put_str(&o, "}");
    return finish(&o);
}

size_t el_page_json_state(const char *state, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    put_str(&o, "{\"state\":\"");
    put_str(&o, state);
    put_str(&o, "\"}");
    return finish(&o);
}

/* ---- content negotiation ---- */

struct item {
    const char *v; /* the element's value: a media range or a language tag */
    size_t vlen;   /* its length */
    int q;         /* its weight in thousandths, 1000 without a q parameter */
};

/* qvalue = "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"]; returns thousandths or -1. */
static int parse_q(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1')) return -1;
    int q = (s[0] - '0') * 1000;
    if (n == 1) return q;
    if (s[1] != '.' || n > 5) return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9') return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* Next element of a comma-separated header list with ";name=value" parameters
 * (Accept, Accept-Language), from the list iterator at *p. Returns 1 with
 * *it filled, 0 at the end, -1 if malformed. Empty elements are skipped, as
 * HTTP lists allow. */
static int next_item(const char **p, const char *end, struct item *it)
{
    const char *s;
    size_t len;
    do
        if (!el_http_next_item(p, end, &s, &len)) return 0;
    while (len == 0);
    size_t i = 0;
    it->v = s;
    while (i < len && (el_http_is_tchar((unsigned char)s[i]) || s[i] == '/'))
        i++;
    it->vlen = i;
    it->q = 1000;
    if (it->vlen == 0) return -1;
    for (;;) {
        i = (size_t)(el_http_skip_ows(s + i, s + len) - s);
        if (i == len) break;
        if (s[i] != ';') return -1;
        i = (size_t)(el_http_skip_ows(s + i + 1, s + len) - s);
        size_t name = i;
        i = (size_t)(el_http_skip_token(s + i, s + len) - s);
        size_t name_len = i - name;
        if (name_len == 0 || i == len || s[i] != '=') return -1;
        i++;
        size_t val = i;
        if (i < len && s[i] == '"') { /* quoted-string */
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            if (i >= len) return -1;
            i++;
        } else {
            i = (size_t)(el_http_skip_token(s + i, s + len) - s);
        }
        if (el_strcaseeq(s + name, name_len, "q", 1) && (it->q = parse_q(s + val, i - val)) < 0)
            return -1;
    }
    return 1;
}

enum el_lang el_page_lang(const char *accept_language, size_t len)
{
    enum el_lang best = EL_LANG_EN;
    int best_q = 0;
    const char *pos = accept_language;
    struct item it;
    int r;
    if (accept_language == NULL) return EL_LANG_EN;
    while ((r = next_item(&pos, accept_language + len, &it)) == 1) {
        size_t primary = 0;
        while (primary < it.vlen && it.v[primary] != '-')
            primary++;
        for (size_t i = 0; i < it.vlen; i++) {
            char c = it.v[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || (c == '*' && it.vlen == 1);
            if (!ok) return EL_LANG_EN;
        }
        int lang = el_strcaseeq(it.v, it.vlen, "*", 1) ? EL_LANG_EN
                                                        : el_page_lang_parse(it.v, primary);
        if (lang < 0) continue;
        if (it.q > best_q) { /* strictly greater: on a tie the earlier one wins */
            best_q = it.q;
            best = (enum el_lang)lang;
        }
    }
    return r < 0 ? EL_LANG_EN : best;
}

/* The weight of the page and of JSON in Accept: each from its most specific
 * range (text/html over the text wildcard, application/json over the
 * application wildcard). The page wins when its weight is above 0 and not below
 * JSON's; a bare wildcard speaks for neither. */
bool el_page_wants_html(const char *accept, size_t len)
{
    int html = -1, text = -1, json = -1, app = -1; /* -1: not listed */
    const char *pos = accept;
    struct item it;
    int r;
    if (accept == NULL) return false;
    while ((r = next_item(&pos, accept + len, &it)) == 1) {
        int *q = el_strcaseeq(it.v, it.vlen, "text/html", 9)          ? &html
                 : el_strcaseeq(it.v, it.vlen, "text/*", 6)           ? &text
                 : el_strcaseeq(it.v, it.vlen, "application/json", 16) ? &json
                 : el_strcaseeq(it.v, it.vlen, "application/*", 13)    ? &app
                                                                      : NULL;
        if (q != NULL && it.q > *q) *q = it.q;
    }
    int page = html >= 0 ? html : text;
    int data = json >= 0 ? json : app;
    return r == 0 && page > 0 && page >= data;
}
